import numpy as np
import pytest
from support import run_cli

from lstmstream.fit import run_fit
from lstmstream.learner import Fleet, Forecaster, Settings, load_init


def wave(n: int, seed: int, phase: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 20 + 5 * np.sin(2 * np.pi * np.arange(n) / 12 + phase) + 0.2 * rng.standard_normal(n)


def write(path, key, values):
    with open(path, "w") as f:
        f.write("key,t,v\n" + "".join(f"{key},{i},{float(v)!r}\n" for i, v in enumerate(values)))


def early_mae(model: Forecaster, ys: np.ndarray, upto: int) -> float:
    errs = []
    for i, y in enumerate(ys[:upto]):
        if i:
            errs.append(abs(y - model.forecast()[0]))
        model.learn_one(float(y), i)
    return float(np.mean(errs[5:]))


def test_fit_cli_writes_a_plain_model_file_that_warm_starts_better_than_cold(tmp_path):
    write(tmp_path / "history.csv", "h", wave(600, seed=1))
    r = run_cli(
        "fit",
        str(tmp_path / "history.csv"),
        "--hidden",
        "8",
        "--window",
        "8",
        "--epochs",
        "4",
        "--out",
        str(tmp_path / "m.npz"),
    )
    assert r.returncode == 0, r.stderr
    assert "epoch 4/4" in r.stdout
    init = load_init(tmp_path / "m.npz")
    assert init["W_ih"].shape[0] == 32 and init["W_out"].shape == (1, 8)
    fresh = wave(80, seed=7, phase=1.0)  # a new stream of the same kind
    warm = early_mae(Forecaster(hidden_size=8, window=8, init=str(tmp_path / "m.npz")), fresh, 80)
    cold = np.mean([early_mae(Forecaster(hidden_size=8, window=8, seed=s), fresh, 80) for s in range(3)])
    assert warm < 0.75 * cold


def test_fit_lowers_the_training_loss_below_predicting_no_change(tmp_path):
    write(tmp_path / "h.csv", "h", wave(300, seed=2))
    lines = []
    info = run_fit(
        str(tmp_path / "h.csv"),
        Settings(hidden=8, window=6),
        3,
        32,
        str(tmp_path / "m.npz"),
        log=lines.append,
    )
    assert info["windows"] == 300 - 6 and info["inputs"] == Fleet(Settings()).inputs
    baseline = float(lines[1].split("no change: ")[1].rstrip(")"))
    assert info["loss"] < 0.5 * baseline


def test_fit_refuses_a_history_shorter_than_the_window(tmp_path):
    write(tmp_path / "short.csv", "s", wave(5, seed=3))
    r = run_cli("fit", str(tmp_path / "short.csv"), "--window", "16", "--out", str(tmp_path / "m.npz"))
    assert r.returncode != 0 and "longer than the window" in r.stderr


def test_a_model_file_for_other_settings_is_refused(tmp_path):
    write(tmp_path / "h.csv", "h", wave(100, seed=4))
    run_fit(str(tmp_path / "h.csv"), Settings(hidden=4, window=4), 1, 32, str(tmp_path / "m.npz"), log=print)
    model = Forecaster(hidden_size=8, window=4, init=str(tmp_path / "m.npz"))
    with pytest.raises(ValueError, match="do not fit"):
        model.learn_one(1.0)
