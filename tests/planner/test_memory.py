"""planner/memory.py: a search's freed memory goes back to the operating system."""


def test_freed_search_memory_goes_back_to_the_os_on_glibc():
    import platform

    from planner.memory import release_freed_memory, resident_mb

    assert release_freed_memory(above_mb=1e9) is False  # under the threshold: freed memory is kept for reuse
    if platform.libc_ver()[0] == "glibc":
        assert resident_mb() > 1
        assert release_freed_memory(above_mb=0) is True  # malloc_trim found and called
