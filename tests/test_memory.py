"""Runs ask NumPy for ordinary pages (`sim.memory.small_pages`) and put its choice back; freed
memory is handed back to the system only beyond what a run may keep."""

from __future__ import annotations

import threading

import pytest

from sim import memory, runner
from sim.loader import load_scenario
from sim.model import compile_model

needs_switch = pytest.mark.skipif(memory._set_madvise_hugepage is None, reason="this NumPy has no huge-page switch")


def huge_pages() -> bool:
    """NumPy's current choice, read without changing it."""
    before = memory._set_madvise_hugepage(True)
    memory._set_madvise_hugepage(before)
    return before


@pytest.fixture
def numpy_choice(monkeypatch):
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    before = memory._set_madvise_hugepage(True)
    yield
    memory._set_madvise_hugepage(before)


@pytest.mark.parametrize("choice", [True, False])
@needs_switch
def test_small_pages_inside_and_the_choice_put_back_after(numpy_choice, choice):
    memory._set_madvise_hugepage(choice)
    with memory.small_pages():
        assert not huge_pages()
        with memory.small_pages():
            assert not huge_pages()
        assert not huge_pages()
    assert huge_pages() is choice


@needs_switch
def test_the_last_thread_to_leave_puts_the_choice_back(numpy_choice):
    entered, leave, seen = threading.Barrier(3, timeout=10), threading.Event(), []

    def run(wait: bool):
        with memory.small_pages():
            entered.wait()
            if wait:
                leave.wait(timeout=10)
            seen.append(huge_pages())

    threads = [threading.Thread(target=run, args=(wait,), daemon=True) for wait in (False, True)]
    for thread in threads:
        thread.start()
    try:
        entered.wait()
        threads[0].join(timeout=10)
        inside = huge_pages()  # the second thread is still inside
    finally:
        leave.set()
        threads[1].join(timeout=10)
    assert not inside
    assert seen == [False, False]
    assert huge_pages()


@needs_switch
def test_a_user_who_chose_keeps_their_choice(numpy_choice, monkeypatch):
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    with memory.small_pages():
        assert huge_pages()


@needs_switch
def test_a_run_builds_its_tables_with_small_pages(numpy_choice, monkeypatch):
    seen = []
    frame = runner.table_frame

    def watched(*args):
        seen.append(huge_pages())
        return frame(*args)

    monkeypatch.setattr(runner, "table_frame", watched)
    loaded = load_scenario("adult_conventional", {"settings.patients": 200, "settings.replicates": 1})
    runner.simulate(compile_model(loaded.scenario, loaded.name), chunk_size=100, progress=False)
    assert seen == [False] * 4
    assert huge_pages()


class _FakeLibc:
    def __init__(self):
        self.trims = 0

    def malloc_trim(self, pad):
        self.trims += 1


@pytest.mark.parametrize("free_mib, keep_mib, trimmed",
                         [(10, None, 0), (128, None, 0), (129, None, 1), (600, None, 1), (10, 0, 1)])
def test_freed_memory_is_handed_back_only_beyond_what_a_run_may_keep(monkeypatch, free_mib, keep_mib, trimmed):
    libc = _FakeLibc()
    monkeypatch.setattr(memory, "_LIBC", libc)
    monkeypatch.setattr(memory, "_MALLINFO2", lambda: memory._Mallinfo2(fordblks=free_mib * 2**20))
    memory.hand_back_freed_memory() if keep_mib is None else memory.hand_back_freed_memory(keep_mib)
    assert libc.trims == trimmed


def test_without_heap_statistics_freed_memory_is_always_handed_back(monkeypatch):
    libc = _FakeLibc()
    monkeypatch.setattr(memory, "_LIBC", libc)
    monkeypatch.setattr(memory, "_MALLINFO2", None)
    memory.hand_back_freed_memory()
    assert libc.trims == 1
