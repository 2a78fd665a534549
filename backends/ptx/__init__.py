"""PTX backend: PTX emission and assembly with ptxas."""
