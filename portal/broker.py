"""The embedded broker: kombu's file-system transport, with messages that appear in the queue whole.

kombu creates a message file in the queue folder and only then writes it. A worker that lists the folder in
between moves and reads an empty file, and dies on the JSON error ("Unrecoverable error: JSONDecodeError").
Here a message is written in a staging folder beside the queue and renamed into it: one atomic step on one
file system, so a worker sees either nothing or the whole message.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    @property
    def staging_folder(self) -> str:
        default = os.path.join(os.path.dirname(os.path.abspath(self.data_folder_out)), "staging")
        return self.transport_options.get("staging_folder", default)

    def _put(self, queue, payload, **kwargs) -> None:
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        staged = os.path.join(self.staging_folder, name)
        try:
            os.makedirs(self.staging_folder, exist_ok=True)
            with open(staged, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(staged, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            raise ChannelError(f"Cannot add file {name!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
