import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmstream.window import Window


@settings(max_examples=50, deadline=None)
@given(k=st.integers(1, 9), size=st.integers(1, 3), pushes=st.lists(st.integers(0, 2), max_size=40))
def test_ring_reads_the_last_k_points_in_order_across_wraparound(k, size, pushes):
    """Three streams pushed in an arbitrary interleaving each read back their own last k points."""
    w = Window(k, size, hidden=2, rows=3)
    history = [[np.zeros(size)] * k for _ in range(3)]
    for step, row in enumerate(pushes):
        x = np.full(size, step + 1.0) * (row + 1)
        w.push(np.array([row]), x[None], np.full((1, 2), step), np.zeros((1, 2)))
        history[row].append(x)
    for row in range(3):
        np.testing.assert_array_equal(w.read(np.array([row]))[0], np.array(history[row][-k:]))
    np.testing.assert_array_equal(w.read(np.arange(3)), np.stack([np.array(h[-k:]) for h in history]))


def test_push_keeps_the_start_state():
    w = Window(3, 1, hidden=2, rows=2)
    w.push(np.array([1]), np.ones((1, 1)), np.array([[1.0, 2.0]]), np.array([[3.0, 4.0]]))
    np.testing.assert_array_equal(w.h0, [[0, 0], [1, 2]])
    np.testing.assert_array_equal(w.c0, [[0, 0], [3, 4]])


def test_a_batch_push_equals_pushing_each_stream_alone():
    one, many = Window(3, 2, hidden=1, rows=3), Window(3, 2, hidden=1, rows=3)
    for step in range(5):
        x = np.array([[step, 1.0], [step, 2.0]])
        for j, row in enumerate((2, 0)):
            one.push(np.array([row]), x[j : j + 1], np.full((1, 1), step), np.zeros((1, 1)))
        many.push(np.array([2, 0]), x, np.full((2, 1), step), np.zeros((2, 1)))
    for n, a in one.arrays().items():
        np.testing.assert_array_equal(a, many.arrays()[n], err_msg=n)
    np.testing.assert_array_equal(one.read(np.array([2])), many.read(np.array([0, 2]))[1:])
