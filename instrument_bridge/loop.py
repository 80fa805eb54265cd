"""The instrument-side live loop: scan, ask the server for a verdict, carry out its decision.

numpy + pyzmq only. Every failure is recorded and survived: an instrument that stops answering
or answers a command with an error is reported to the server's log as an ``instrument_timeout``
or ``instrument_error`` and the loop carries on with the next scan; a lost connection to the
instrument, or a bridge server that stops answering, ends the loop with its summary
(``connection_lost``, ``bridge_lost``). Actions pass through
:class:`SafeInstrument` (limits, rate, dry run).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from instrument_bridge.client import BridgeClient, BridgeTimeout, RemoteError
from instrument_bridge.instrument import (
    Action,
    InstrumentError,
    InstrumentTimeout,
    SafeInstrument,
)
from instrument_bridge.session_log import counted


@dataclasses.dataclass
class LoopSummary:
    scans: int = 0
    actions: int = 0
    actions_sent: int = 0
    refused: int = 0
    timeouts: int = 0
    instrument_errors: int = 0  # commands the instrument answered with an error (logged)
    connection_lost: str | None = None  # why the loop ended early: the instrument went away
    bridge_lost: str | None = None  # why the loop ended early: the bridge server stopped answering
    rejected: int = 0  # scans the bridge answered with an error (logged there with the reason)
    skipped: int = 0  # scans the adapter passed over (a watcher's unreadable files; logged)
    false_actions: int = 0  # actions taken while the tip was good (simulator truth)
    scans_to_good: int | None = None  # first scan with a good tip after a bad one (truth)
    actions_to_good: int | None = None
    seconds_to_good: float | None = None
    called_person: bool = False
    stopped_by_operator: bool = False  # Ctrl-C: the loop ended there, summary and log kept
    decisions: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """One line for the operator.

        Example:
            >>> LoopSummary(scans=1, actions=1, actions_sent=1).describe()
            '1 scan, 1 action (1 sent, 0 refused by the safety limits), 0 instrument timeouts'
        """
        s = (
            f"{counted(self.scans, 'scan')}, {counted(self.actions, 'action')} ({self.actions_sent} sent, "
            f"{self.refused} refused by the safety limits), "
            f"{counted(self.timeouts, 'instrument timeout')}"
        )
        if self.scans_to_good is not None:
            s += (
                f"; good tip after {counted(self.scans_to_good, 'scan')} and "
                f"{counted(self.actions_to_good, 'action')} "
                f"({self.seconds_to_good / 60:.1f} instrument-minutes)"
            )
        if self.skipped:
            s += f"; {counted(self.skipped, 'scan file')} skipped as unreadable or mostly empty"
        if self.rejected:
            s += f"; {counted(self.rejected, 'scan')} refused by the bridge (see its log)"
        if self.false_actions:
            s += f"; {counted(self.false_actions, 'action')} while the tip was already good"
        if self.called_person:
            s += "; the policy gave up and called a person"
        if self.instrument_errors:
            s += f"; {counted(self.instrument_errors, 'command')} the instrument refused with an error"
        if self.stopped_by_operator:
            s += "; stopped by the operator (Ctrl-C)"
        if self.connection_lost:
            s += f"; ended early, the instrument connection was lost ({self.connection_lost})"
        if self.bridge_lost:
            s += f"; ended early, the bridge server stopped answering ({self.bridge_lost})"
        return s


def run_loop(
    safe: SafeInstrument,
    client: BridgeClient,
    *,
    n_scans: int,
    stop_after_good: int | None = None,
    clock: Callable[[], float] | None = None,
    on_verdict: Callable[[dict], None] | None = None,
) -> LoopSummary:
    """Run up to ``n_scans`` scans. With ``stop_after_good`` (simulator only), stop once that
    many consecutive scans had a good tip (truth) after the policy stopped acting.

    Ctrl-C ends the loop, not the session: the summary comes back with
    ``stopped_by_operator`` set, so the caller still writes it and closes the log.
    """
    out = LoopSummary()
    client.heartbeat()  # fail early (BridgeTimeout) if no server answers
    try:
        _loop(safe, client, out, n_scans, stop_after_good, clock or (lambda: 0.0), on_verdict)
    except KeyboardInterrupt:
        out.stopped_by_operator = True
    except ConnectionError as e:
        if not (out.scans or out.rejected or out.timeouts or out.instrument_errors):
            raise  # never connected: a set-up error for the caller, not a lost connection
        # Nothing more can be scanned; the summary and the log still say what happened.
        out.connection_lost = str(e)
        client.report("error", {"code": "instrument_lost", "message": str(e)})
    except BridgeTimeout as e:
        # The server's log holds every scan and verdict until then; nothing more can be voted.
        out.bridge_lost = str(e)
    return out


def _instrument_failed(e: Exception, client, out: LoopSummary, **fields) -> None:
    """Log a timeout or an error answer from the instrument and count it; the loop goes on."""
    if isinstance(e, InstrumentTimeout):
        out.timeouts += 1
        code = "instrument_timeout"
    else:
        out.instrument_errors += 1
        code = "instrument_error"
    message = str(e)
    if "action" in fields:
        message += " (the action may still have reached the tip)"
    parent = fields.pop("parent", None)
    client.report("error", {"code": code, "message": message, **fields}, parent=parent)


def _loop(safe, client, out, n_scans, stop_after_good, clock, on_verdict) -> None:
    t0 = clock()
    was_bad = False
    good_run = 0
    for _ in range(n_scans):
        try:
            scan = safe.scan()
        except (InstrumentTimeout, InstrumentError) as e:
            _report_skipped(safe, client, out)
            _instrument_failed(e, client, out)
            continue
        _report_skipped(safe, client, out)
        meta = scan.metadata()
        if scan.truth is not None:
            meta["truth"] = scan.truth
        try:
            verdict = client.submit_scan(scan.z, **meta)
        except RemoteError:
            # Refused (too few scanned lines, a bad array, the family failed, overload): the
            # server logged why; the next scan may be fine, so the loop goes on.
            out.rejected += 1
            continue
        out.scans += 1
        decision = verdict.body["decision"]
        out.decisions[decision["state"]] = out.decisions.get(decision["state"], 0) + 1
        if on_verdict is not None:
            on_verdict(verdict.body)
        good = None if scan.truth is None else bool(scan.truth["good"])
        if good is False:
            was_bad = True
        if good and was_bad and out.scans_to_good is None:
            out.scans_to_good, out.actions_to_good = out.scans, out.actions
            out.seconds_to_good = clock() - t0
        good_run = good_run + 1 if good else 0
        if decision["state"] == "call_person":
            out.called_person = True
            break
        if decision.get("action"):
            action = Action.from_dict(decision["action"])
            out.actions += 1
            if good:
                out.false_actions += 1
            try:
                res = safe.execute(action)
            except (InstrumentTimeout, InstrumentError) as e:
                _instrument_failed(e, client, out, action=action.to_dict(), parent=verdict.id)
                continue
            out.actions_sent += int(res.sent)
            out.refused += int(res.message.startswith("refused"))
            client.report("action_result", res.to_dict(), parent=verdict.id)
            # After an action that reached the tip (a refused one changed nothing to move from).
            if decision.get("move_after") and res.sent:
                try:
                    safe.move_to_fresh_area()
                except (InstrumentTimeout, InstrumentError) as e:
                    _instrument_failed(e, client, out)
            good_run = 0
        if stop_after_good and good_run >= stop_after_good and out.scans_to_good is not None:
            break


def _report_skipped(safe, client, out: LoopSummary) -> None:
    """Log the scans the adapter passed over since the last call, so none is lost unrecorded."""
    for source, why in safe.skipped[out.skipped :]:
        client.report("error", {"code": "scan_skipped", "message": f"{source}: {why}"})
        out.skipped += 1
