"""Maps the top-level source folders into the `tilec` package.

`dialects/`, `passes/` and `backends/` sit beside `tilec/` (MLIR-style layout) but
install as `tilec.dialects`, `tilec.passes` and `tilec.backends`, so no top-level
package of those names is ever installed.
"""

from setuptools import find_packages, setup

MAPPED = {"tilec": "tilec", "tilec.dialects": "dialects", "tilec.passes": "passes", "tilec.backends": "backends"}

packages = []
for pkg, folder in MAPPED.items():
    packages.append(pkg)
    packages += [f"{pkg}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=MAPPED)
