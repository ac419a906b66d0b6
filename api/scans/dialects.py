"""How a CSV is written, as an upload's form or a datastore's registration may say it (issue 20).

Each field left out is sniffed from the file (services/adapters/readers.py `read_with_dialect`).
"""
from __future__ import annotations

import codecs
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.adapters.readers import Dialect


class DialectBody(BaseModel):
    model_config = ConfigDict(extra="ignore")  # an upload's form holds its file too
    delimiter: Literal[",", ";", "\t", "|", "tab"] | None = None
    decimal: Literal[".", ","] | None = None
    encoding: str | None = Field(None, max_length=40)
    skip_footer: int = Field(0, ge=0, le=1000)
    dates: Literal["DMY", "MDY"] | None = None

    @field_validator("encoding")
    @classmethod
    def _known(cls, encoding: str | None) -> str | None:
        if encoding is not None:
            try:
                codecs.lookup(encoding)
            except LookupError:
                raise ValueError(f"unknown encoding '{encoding}'") from None
        return encoding

    def dialect(self) -> Dialect:
        return Dialect("\t" if self.delimiter == "tab" else self.delimiter, self.decimal, self.encoding,
                       self.skip_footer, self.dates)

    def stored(self) -> dict:
        """What a datastore keeps: the fields said (the rest stay sniffed)."""
        return {k: v for k, v in self.dialect().__dict__.items() if v not in (None, 0)}


class DatastoreDialect(DialectBody):
    model_config = ConfigDict(extra="forbid")  # a JSON body: a misspelt field is a 400
