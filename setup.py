"""Package discovery for the wheel and sdist (metadata lives in pyproject.toml).

The repository keeps the users' layout (flows/ tasks/ validators/ at the top level); installed,
they live under the one ``sales_etl`` namespace so nothing collides in site-packages. A static
package list in pyproject.toml once forgot ``sales_etl.db`` and ``sales_etl.storage``; here every
folder with an ``__init__.py`` under a mapped root is found, sub-packages included.
"""

from setuptools import find_packages, setup

# installed name -> folder in the repository
ROOTS = {
    "sales_etl": "sales_etl",
    "sales_etl.flows": "flows",
    "sales_etl.tasks": "tasks",
    "sales_etl.validators": "validators",
}


def _discover() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for name, folder in ROOTS.items():
        package_dir[name] = folder
        packages.append(name)
        for sub in find_packages(folder):
            packages.append(f"{name}.{sub}")
            package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"
    return sorted(set(packages)), package_dir


packages, package_dir = _discover()
setup(packages=packages, package_dir=package_dir)
