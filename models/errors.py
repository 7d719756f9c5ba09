"""Errors of the models package. Each message is meant to be shown to a person as is, without a traceback."""


class ModelsError(Exception):
    """Base class: something about a model file or the catalog is wrong; the message says what to do."""


class CatalogError(ModelsError):
    pass


class UnknownModelError(ModelsError):
    pass


class ModelNotFoundError(ModelsError):
    """A known model is not on disk (or a path does not exist)."""


class NotGGUFError(ModelsError):
    pass


class VerificationError(ModelsError):
    """Size or sha256 of a file does not match what the catalog (or registration) recorded."""


class DownloadError(ModelsError):
    pass


class DiskFullError(ModelsError):
    pass
