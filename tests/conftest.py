import importlib.util
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_example(name: str):
    """Import examples/<name>.py as a module (examples/ is not a package)."""
    key = f"tilec_example_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def example():
    return load_example


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory):
    """Keep the test suite's compiled kernels out of the user's ~/.cache/tilec."""
    import os

    if "TILEC_CACHE_DIR" not in os.environ:
        os.environ["TILEC_CACHE_DIR"] = str(tmp_path_factory.mktemp("tilec-cache"))
    yield
