"""The source's event types and the statuses the projection derives from them: one vocabulary
for the projection, the quality rules and the synthetic data."""

TRIGGERED = "STOP_TRIGGERED"
SUBMITTED = "EXECUTION_SUBMITTED"
EXECUTED = "EXECUTED"
FAILED = "FAILED"
BLOCK_TYPES: tuple[str, ...] = (
    "BLOCKED",
    "STALE_PRICE",
    "KILL_SWITCH",
    "SLIPPAGE_BREACH",
    "CIRCUIT_BREAKER",
)
KNOWN_EVENT_TYPES: tuple[str, ...] = (TRIGGERED, SUBMITTED, EXECUTED, FAILED, *BLOCK_TYPES)

STATUSES: tuple[str, ...] = ("PENDING", "SUBMITTED", "EXECUTED", "FAILED", "BLOCKED")
# The status an event type sets: a terminal one, or progress before it.
TERMINAL_STATUS: dict[str, str] = {
    EXECUTED: "EXECUTED",
    FAILED: "FAILED",
    **{t: "BLOCKED" for t in BLOCK_TYPES},
}
PROGRESS_STATUS: dict[str, str] = {SUBMITTED: "SUBMITTED", TRIGGERED: "PENDING"}
