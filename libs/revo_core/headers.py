"""Header names revo puts on NATS messages, beside the W3C trace context."""

ERROR_CODE = "Nats-Service-Error-Code"
ERROR_MESSAGE = "Nats-Service-Error"
MSG_ID = "Nats-Msg-Id"
STATUS = "Status"
NO_RESPONDERS = "503"

# Streamed replies: chunks are plain messages; the end, a ping or an error say what they are.
STREAM = "Revo-Stream"
STREAM_END = "end"
STREAM_PING = "ping"
# On the end message: how many chunks were sent.
STREAM_SEQ = "Revo-Seq"
# Absolute deadline (unix epoch, milliseconds) after which the server gives up.
DEADLINE = "Revo-Deadline"
