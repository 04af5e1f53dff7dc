"""Package discovery for the wheel and sdist (metadata lives in pyproject.toml).

The repository keeps the users' layout (flows/ tasks/ validators/ at the top level); installed,
they live under the one ``sales_etl`` namespace so nothing collides in site-packages. A static
package list in pyproject.toml once forgot ``sales_etl.db`` and ``sales_etl.storage``; here every
folder under a mapped root is found, sub-packages and data-only folders (``sales_etl/resources``)
included, and every file in them ships (package data ``*``; dot-files and ``__pycache__`` are
left out). tests/test_packaging.py checks the built wheel and sdist against the source tree.

Why not ``[tool.setuptools.packages.find]``: it names a package after its folder
(``flows``), and cannot put a folder under another package's name (``sales_etl.flows``);
``package-dir`` alone maps only the packages listed by hand. setup.py is setuptools' supported
place for computed configuration, next to a declarative pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

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
        # Namespace discovery: a folder without __init__.py (data only) is a package too.
        for sub in find_namespace_packages(folder, exclude=["__pycache__", "*.__pycache__"]):
            packages.append(f"{name}.{sub}")
            package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"
    return sorted(set(packages)), package_dir


packages, package_dir = _discover()
setup(
    packages=packages,
    package_dir=package_dir,
    package_data={name: ["*"] for name in packages},
    exclude_package_data={"": ["*.pyc"]},
)
