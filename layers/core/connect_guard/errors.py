"""Domain errors. Adapters turn botocore's ClientError into these; the runtime maps them to
batch outcomes: a PoisonEventError fails its item for good (it ends in the DLQ with its reason),
anything else is retried by SQS."""


class ConnectGuardError(Exception):
    """Base of every error raised on purpose by connect-guard."""


class PoisonEventError(ConnectGuardError):
    """The event itself is unusable: retrying it can never succeed."""


class ConfigurationError(ConnectGuardError):
    """Settings are missing or invalid: responders fail closed (alert, don't act)."""


class DocumentUnavailableError(ConnectGuardError):
    """A policy document could not be read (denied, deleted, an account that is not enrolled)."""


class MemberAccessError(ConnectGuardError):
    """Another account cannot be reached: not enrolled, or its member role cannot be assumed."""


class ConnectResourceNotFoundError(ConnectGuardError):
    """The Connect user, profile or instance named by an event no longer exists."""


class DirectInvocationError(ConnectGuardError):
    """A responder was invoked directly, outside a local run: it takes only its queue's batches."""
