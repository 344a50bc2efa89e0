import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lstmstream.shard import Shard, parse, shard_of


@given(keys=st.sets(st.text(min_size=1, max_size=20), max_size=200), n=st.integers(1, 7))
def test_shards_split_a_key_set_disjointly_and_completely(keys, n):
    shards = [Shard(i, n) for i in range(n)]
    owned = [{k for k in keys if s.owns(k)} for s in shards]
    assert set().union(*owned) == keys
    assert sum(map(len, owned)) == len(keys)


def test_the_split_is_stable_across_processes_and_roughly_even():
    keys = [f"sensor-{i}" for i in range(4000)]
    here = [shard_of(k, 4) for k in keys]
    code = "from lstmstream.shard import shard_of; print([shard_of(f'sensor-{i}', 4) for i in range(4000)])"
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(there.stdout) == here
    assert all(800 < here.count(i) < 1200 for i in range(4))
    assert shard_of("sensor-1", 4) == shard_of(b"sensor-1", 4)


def test_parse():
    assert parse("2/4") == Shard(2, 4) and str(parse(" 0/1 ")) == "0/1"
    for bad in ("4/4", "-1/2", "1", "a/b", "1/0", ""):
        with pytest.raises(ValueError, match="shard"):
            parse(bad)
