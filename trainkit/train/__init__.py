"""Training: run directories, crash-safe checkpoints and writes (the trainer builds on these)."""
from trainkit.utils.atomic import (
    StorageError,
    append_line,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_lines,
)
from trainkit.train.checkpoint import (
    check_state_fits,
    find_checkpoint,
    load_checkpoint,
    load_model_weights,
    read_safetensors,
    save_checkpoint,
)
from trainkit.train.run import Run
from trainkit.train.rundir import (
    STATUSES,
    MetricsLog,
    RunInfo,
    RunSummary,
    create_run_dir,
    is_run_dir,
    list_runs,
    open_run,
    resolve_runs_root,
)

__all__ = [
    "StorageError", "append_line", "atomic_write_bytes", "atomic_write_json",
    "atomic_write_text", "read_lines",
    "check_state_fits", "find_checkpoint", "load_checkpoint", "load_model_weights",
    "read_safetensors", "save_checkpoint",
    "Run", "STATUSES", "MetricsLog", "RunInfo", "RunSummary", "create_run_dir", "is_run_dir",
    "list_runs", "open_run", "resolve_runs_root",
]
