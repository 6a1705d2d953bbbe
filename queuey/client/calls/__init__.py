"""Every endpoint as a :class:`Call`: the request, how to read its answer, whether to resend.

No I/O here: :class:`~queuey.client.sync.Client` and
:class:`~queuey.client.aio.AsyncClient` send the same calls, one blocking and
one with ``await``, so both speak the protocol through this one package:
``base`` (the :class:`Call` and what calls are built of), then the calls on
``queues``, on ``messages`` and on consumer ``groups``.
"""

from queuey.client.calls.base import (
    Call,
    Paths,
    Receipt,
    Ref,
    Since,
    decode,
    encode,
    new_idempotency_key,
    partitions_text,
    receipts,
    ref_text,
    refs_path,
    segment,
    since_text,
)
from queuey.client.calls.groups import (
    ack,
    ack_and_publish,
    claim,
    delete_group,
    extend,
    get_group,
    group_fields,
    list_groups,
    put_group,
    release,
    seek,
)
from queuey.client.calls.messages import (
    BATCH_FIELDS,
    delete_messages,
    get,
    post,
    post_many,
    put,
    read,
    stream,
    token,
)
from queuey.client.calls.queues import (
    create_queue,
    delete_queue,
    list_queues,
    queue_fields,
    queue_settings,
    update_queue,
)

__all__ = [
    "BATCH_FIELDS",
    "Call",
    "Paths",
    "Receipt",
    "Ref",
    "Since",
    "ack",
    "ack_and_publish",
    "claim",
    "create_queue",
    "decode",
    "delete_group",
    "delete_messages",
    "delete_queue",
    "encode",
    "extend",
    "get",
    "get_group",
    "group_fields",
    "list_groups",
    "list_queues",
    "new_idempotency_key",
    "partitions_text",
    "post",
    "post_many",
    "put",
    "put_group",
    "queue_fields",
    "queue_settings",
    "read",
    "receipts",
    "ref_text",
    "refs_path",
    "release",
    "seek",
    "segment",
    "since_text",
    "stream",
    "token",
    "update_queue",
]
