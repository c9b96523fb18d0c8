"""The mutation check's own guarantees, in seconds: every planted bug still applies to today's code,
names a test that exists, and a pattern that is gone or doubled stops the check with its name."""

from __future__ import annotations

import os
import re

import pytest

from tests import mutations
from tests.mutations import MUTATIONS, Mutation, MutationError, apply, check_patterns, parse_args, select


def test_every_pattern_occurs_exactly_once_in_todays_code():
    check_patterns(MUTATIONS)
    assert len(MUTATIONS) >= 30 and len({m.name for m in MUTATIONS}) == len(MUTATIONS)
    assert all(m.old != m.new for m in MUTATIONS)


def test_every_covering_test_exists():
    for m in MUTATIONS:
        for test in m.tests:
            path, _, name = test.partition("::")
            name = name.split("[")[0]  # a parametrized id names its function before the brackets
            with open(os.path.join(mutations.ROOT, path), encoding="utf-8") as f:
                source = f.read()
            if name:
                assert re.search(rf"^def {re.escape(name)}\(", source, re.MULTILINE), (m.name, test)


def test_a_pattern_gone_or_doubled_is_an_error_naming_the_mutation(tmp_path):
    (tmp_path / "m.py").write_text("a = 1\nb = 2\nb = 2\n")
    gone = Mutation("gone", "m.py", "c = 3", "c = 4", ("tests/test_x.py",))
    doubled = Mutation("doubled", "m.py", "b = 2", "b = 3", ("tests/test_x.py",))
    with pytest.raises(MutationError, match=r"gone: 'c = 3' occurs 0 times in m.py.*doubled: 'b = 2' occurs 2 times"):
        check_patterns((gone, doubled), root=str(tmp_path))
    once = Mutation("once", "m.py", "a = 1", "a = -1", ("tests/test_x.py",))
    check_patterns((once,), root=str(tmp_path))
    apply(once, str(tmp_path))
    assert (tmp_path / "m.py").read_text() == "a = -1\nb = 2\nb = 2\n"


def test_bad_command_lines_name_the_flag_and_the_allowed_values(capsys):
    with pytest.raises(MutationError, match="--only: unknown mutation.s. nope; --list shows the"):
        select("crop_centred,nope")
    assert [m.name for m in select("fold_epsilon_zero, crop_centred")] == ["fold_epsilon_zero", "crop_centred"]
    for argv, message in ((["--jobs=3"], "--jobs=3 is not allowed; choose 1 to 2"),
                          (["--timeout=0"], "--timeout=0.0 must be a positive number of seconds")):
        with pytest.raises(SystemExit):
            parse_args(argv)
        assert message in capsys.readouterr().err
