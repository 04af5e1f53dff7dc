"""Object stores behind one small interface, chosen by URL.

``open_store("./data/landing")`` gives a :class:`LocalStore`;
``open_store("s3://bucket/prefix")`` gives an S3 store. Keys are always relative,
``/``-separated paths under the store's root (``to_process/sales_1.csv``).
"""

from sales_etl.storage.base import ObjectInfo, ObjectStore, StorageError, safe_key
from sales_etl.storage.factory import open_store

__all__ = ["ObjectInfo", "ObjectStore", "StorageError", "open_store", "safe_key"]
