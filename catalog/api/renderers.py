"""CSV renderer for `?format=csv` exports (a list of flat dicts, header from the first row's keys)."""

from __future__ import annotations

import csv
import io
import json

from rest_framework.renderers import BaseRenderer


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if isinstance(data, dict) and "results" in data:
            data = data["results"]
        if isinstance(data, dict):
            data = [data]
        buffer = io.StringIO()
        if data:
            header = list(data[0].keys())
            writer = csv.DictWriter(buffer, fieldnames=header, extrasaction="ignore")
            writer.writeheader()
            for row in data:
                writer.writerow(
                    {k: json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v for k, v in row.items()}
                )
        return buffer.getvalue().encode("utf-8")
