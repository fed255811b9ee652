"""Errors a user can act on. The CLIs turn these into a one-line message and exit code 2."""


class TranslatorError(Exception):
    """Base for errors whose message is meant for the user, not a traceback."""


class InputError(TranslatorError, ValueError):
    """The text or an option given to us cannot be translated as asked (empty, too long, bad bytes...)."""


class ModelLoadError(TranslatorError):
    """A model spec could not be resolved or loaded; the message names the spec and what was tried."""
