"""Header names revo puts on NATS messages, beside the W3C trace context."""

ERROR_CODE = "Nats-Service-Error-Code"
ERROR_MESSAGE = "Nats-Service-Error"
MSG_ID = "Nats-Msg-Id"
STATUS = "Status"
NO_RESPONDERS = "503"

# Streamed replies: every message on the reply inbox says what it is.
STREAM = "Revo-Stream"
STREAM_CHUNK = "chunk"
STREAM_END = "end"
STREAM_PING = "ping"
STREAM_SEQ = "Revo-Seq"
# Absolute deadline (unix epoch, milliseconds) after which the server gives up.
DEADLINE = "Revo-Deadline"
