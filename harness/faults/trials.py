"""The trial and campaign engine. A `Trial` is one run's outcome (settled, stalled, exact, its
problems and notes); a `Campaign` is one fault kind on one system: setup (the system, the workload,
the reference run), then trials that inject the fault once some units of the compliance scan
reported, wait for every scan to be final, compare each with the reference and replay the log, with
a stall report when a scan is not final by the deadline. A kind subclasses `Campaign` with its `inject`."""
from __future__ import annotations

import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harness.faults.knobs import DEADLINE_S, ROWS, code_version
from harness.faults.oracle import differences, fingerprint, oracle_problems, replay_problems
from harness.faults.probes import connect_ro, log, projector_lag, streams_lag
from harness.faults.systems import Procs
from harness.faults.waiting import UnitWatch, _wait_final, unit_reports
from harness.faults.workload import Workload

# --------------------------------------------------------------------------- trials


WATCHDOG_SOUGHT = "seeking it again"  # streams/watchdogs.py: a recovery that read nothing, sought again


def _process_logs(root: Path) -> list[Path]:
    """The processes' logs under `root` (not a broker's segment files, 00000000000000000000.log)."""
    return sorted(path for path in root.rglob("*.log") if not path.stem.isdigit())


def _log_sizes(root: Path) -> dict[Path, int]:
    return {path: path.stat().st_size for path in _process_logs(root)}


def _lines_since(sizes: dict[Path, int], root: Path, needle: str) -> list[str]:
    """The processes' log lines holding `needle` written since `sizes` (a watchdog that healed
    something by itself: no exit to note, but a trial slower than its peers)."""
    found = []
    for path in _process_logs(root):
        with open(path, "rb") as log_file:
            log_file.seek(sizes.get(path, 0))
            text = log_file.read().decode(errors="replace")
        found += [f"{path.name}: {line.strip()[:1500]}" for line in text.splitlines() if needle in line]
    return found


@dataclass(repr=False)
class Trial:
    kind: str
    index: int
    scans: dict[str, str] = field(default_factory=dict)  # label -> scan id
    settled: bool = False
    exact: bool = False
    stalled: bool = False
    landed: bool | None = None  # the fault came after some units of the compliance scan reported, not all
    settle_s: float | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    report: str = ""
    attempt: int = 0
    restarts: list[str] = field(default_factory=list)  # processes that exited by themselves and were restarted

    def __repr__(self) -> str:
        return f"<Trial {self.kind} #{self.index}: exact={self.exact} stalled={self.stalled}>"

    def summary(self) -> str:
        state = ("exact" if self.exact else "STALLED" if self.stalled
                 else "settled, NOT exact" if self.settled else "failed")
        settle = f"{self.settle_s:.1f}s" if self.settle_s is not None else "-"
        head = (f"{self.kind} #{self.index}: {state}; settle {settle}; landed mid-scan: {self.landed}; "
                f"scans {self.scans}")
        lines = [head, *(f"  note: {n}" for n in self.notes), *(f"  PROBLEM: {p}" for p in self.problems)]
        if self.report:
            lines.append(self.report)
        return "\n".join(lines)


class Campaign:
    """One fault kind on one system: setup() (system, workload, reference), trial(i), teardown()."""

    kind = "none"
    monitor = True
    rows = ROWS  # records of the compliance scan
    restarts_allowed = True  # a process may exit by itself (a watchdog) if it is restarted and all ends exact

    def __init__(self, bootstrap: str, tmp: Path, deadline_s: float = DEADLINE_S):
        self.bootstrap = bootstrap
        self.tmp = tmp
        self.deadline_s = deadline_s
        self.target = None
        self.workload: Workload | None = None
        self.reference: dict[str, dict] = {}
        self.units: dict[str, int] = {}
        self.baseline_s: list[float] = []

    # -- system
    def make_target(self):
        return Procs(self.bootstrap, self.tmp / f"{self.kind}-system", rows=self.rows).start()

    def setup(self) -> None:
        self.target = self.make_target()
        self.workload = Workload.prepare(self.target, monitor=self.monitor, rows=self.rows)
        trial = self.unfaulted(0)
        if not trial.exact:
            raise AssertionError(f"the unfaulted reference run of {self.kind} failed:\n{trial.summary()}")

    def teardown(self) -> None:
        if self.target is not None:
            self.target.stop()

    # -- runs
    def unfaulted(self, index: int) -> Trial:
        """A run with no fault: the first is the reference (checked against the independent answer)."""
        trial = Trial("none", index)
        t0 = time.monotonic()
        with self.target.client() as api:
            trial.scans = self.workload.start(api)
        self.settle(trial, t0)
        if not trial.settled:
            return trial
        fps = {label: fingerprint(self.target, s) for label, s in trial.scans.items()}
        if not self.reference:
            trial.problems += oracle_problems(fps["compliance"], self.workload.rows, self.workload.heavy)
            if not trial.problems:
                self.code = code_version()
                self.reference = fps
                self.units = {label: len(fp["units"]) for label, fp in fps.items()}
        else:
            for label, fp in fps.items():
                trial.problems += [f"{label}: {d}" for d in differences(self.reference[label], fp)]
        trial.problems += replay_problems(self.target, self.tmp)
        trial.exact = not trial.problems
        if trial.exact:
            self.baseline_s.append(trial.settle_s)
        return trial

    def kill_point(self, index: int, attempt: int = 0) -> int:
        """After how many reported units of the compliance scan the fault lands: spread over the first
        half of the scan, so it lands with units both done and to do (the first unit on a retry)."""
        n = self.units["compliance"]
        return 1 if attempt else 1 + (index * 3) % max(1, n // 2)

    def trial(self, index: int, attempts: int = 3) -> Trial:
        """One trial; if the fault came after every unit had reported (it missed the scan), again with
        the fault after the first unit. Every attempt's scans are checked all the same."""
        notes, problems = [], []
        for attempt in range(attempts):
            trial = Trial(self.kind, index)
            trial.attempt = attempt
            logs = _log_sizes(self.tmp)  # the campaign's: a kind may choose its target in run (UpCtrlC)
            try:
                self.run(trial)
            except Exception as exc:  # a fault that could not even be injected is a failed trial, with why
                import traceback

                trial.problems.append(f"trial aborted: {exc!r}\n{traceback.format_exc()[-3000:]}")
            trial.notes += _lines_since(logs, self.tmp, WATCHDOG_SOUGHT)
            trial.exact = trial.settled and not trial.problems
            log(trial.summary())
            if trial.landed is not False or not trial.exact or attempt == attempts - 1:
                break
            notes.append(f"attempt {attempt + 1} missed the scan (every unit had reported): {trial.notes}")
            problems += trial.problems
        trial.notes[:0] = notes
        trial.problems[:0] = problems
        trial.exact = trial.settled and not trial.problems
        return trial

    def run(self, trial: Trial) -> None:
        """Start the scans, inject the fault when `kill_point` units reported, settle, check."""
        watch = UnitWatch(self.target.settings)
        try:
            time.sleep(0.3)
            t0 = time.monotonic()
            with self.target.client() as api:
                trial.scans = self.workload.start(api)
            k = self.kill_point(trial.index, trial.attempt)
            seen = watch.wait(trial.scans["compliance"], k, 120)
            if seen < k:
                trial.notes.append(f"only {seen} units reported before the fault (waited for {k})")
            fault_at = time.time()
            self.inject(trial)
        finally:
            watch.close()
        self.settle(trial, t0)
        self.check(trial, fault_at)

    def inject(self, trial: Trial) -> None:
        raise NotImplementedError

    def settle(self, trial: Trial, t0: float, extra: list[str] | None = None) -> None:
        deadline = t0 + self.deadline_s
        exited: dict = {}
        restarts: list[str] = []
        done = _wait_final(self.target, [*trial.scans.values(), *(extra or [])], deadline, exited, restarts)
        trial.restarts += restarts
        shown = restarts[:2] + ([f"... and {len(restarts) - 2} more exits"] if len(restarts) > 2 else [])
        if restarts and not self.restarts_allowed:
            trial.problems += [f"nothing may stop, but {r}" for r in shown]
        else:
            trial.notes += shown
        trial.settled = all(t is not None for t in done.values())
        trial.stalled = not trial.settled
        if trial.settled:
            trial.settle_s = max(done.values()) - t0
        else:
            stuck = [s for s, t in done.items() if t is None]
            if exited:
                trial.problems.append(f"{exited} exited by itself {time.monotonic() - t0:.0f}s after the POST "
                                      f"(exit codes), with scans not final: {stuck}")
                trial.report = self.stall_report(stuck) + "\n" + self.target.logs()
            else:
                trial.problems.append(f"not final {self.deadline_s:.0f}s after the POST: {stuck}")
                trial.report = self.stall_report(stuck)
            self.heal()

    def heal(self) -> None:
        """After a stall, restart every process so the next trial does not inherit it."""
        with contextlib.suppress(Exception):
            self.target.stop()
            self.target.start()

    def stall_report(self, scan_ids: list[str]) -> str:
        lines = []
        with contextlib.suppress(Exception):
            conn = connect_ro(self.target.db_url)
            try:
                for s in scan_ids:
                    row = conn.execute("SELECT kind, status, finalized, units_total, violations_seen, violation_count"
                                       " FROM rm_scans WHERE scan_id = ?", (s,)).fetchone()
                    lines.append(f"scan {s}: {dict(row) if row else 'not in the read model'}")
                    units = Counter(u["status"] for u in conn.execute(
                        "SELECT status FROM rm_units WHERE scan_id = ?", (s,)))
                    pending = [u["unit_id"] for u in conn.execute(
                        "SELECT unit_id FROM rm_units WHERE scan_id = ? AND status NOT IN ('completed', 'failed')",
                        (s,))]
                    lines.append(f"  units: {dict(units)}; not reported: {pending}")
            finally:
                conn.close()
        lines.append("streams group lag:\n" + streams_lag(self.target.settings))
        with contextlib.suppress(Exception):
            lines.append(f"projector lag (stored, end): {projector_lag(self.target.settings, self.target.db_url)}")
        lines.append(self.target.worker_log())
        return "\n".join(lines)

    def check(self, trial: Trial, fault_at: float | None) -> None:
        """Did the fault land mid-scan; compare every scan of the trial with the reference; replay."""
        if fault_at is not None and "compliance" in trial.scans:
            reports = unit_reports(self.target.settings, trial.scans["compliance"])
            before = sum(1 for ts in reports.values() if ts < fault_at * 1000)
            trial.landed = 0 < before < self.units["compliance"]
            spread = " ".join(f"{(ts / 1000 - fault_at):+.2f}" for ts in sorted(reports.values()))
            trial.notes.append(f"{before} of {self.units['compliance']} compliance units had reported when the fault "
                               f"came (unit reports on the ledger at {spread or 'none'} s from it)")
        if not trial.settled:
            return
        if getattr(self, "code", None) and (now := code_version()) != self.code:
            trial.problems.append(f"the product's code changed during the campaign ({self.code} -> {now}): the "
                                  "reference run no longer applies, so this trial proves nothing")
        for label, scan_id in trial.scans.items():
            ref_label = label.split(":")[0]
            trial.problems += [f"{label} {scan_id}: {d}"
                               for d in differences(self.reference[ref_label], fingerprint(self.target, scan_id))]
        trial.problems += replay_problems(self.target, self.tmp)
