"""Sensitive-data detection: PII, payment data and secrets in cells and lines (pure code).

    from services.domain.detectors import Engine
    findings = Engine().scan_cells("notes", pa.array([...]))

catalog: the detectors; engine: running them vectorized; validate: checksums and masks,
shared with the upload PII scan (services/domain/pii.py).
"""
from services.domain.detectors.catalog import DETECTORS, FAMILIES, Detector, described, selected_detectors
from services.domain.detectors.engine import Engine, Finding, LineState, Piece

__all__ = ["DETECTORS", "FAMILIES", "Detector", "Engine", "Finding", "LineState", "Piece", "described",
           "selected_detectors"]
