# Frozen into the 32-bit build: the virtual board's stand-ins and the node runner (frozen.txt
# names them). On the chip `machine` and `network` are C in flash, not Python in the GC heap;
# frozen here, their code and names live outside the heap too. What they still hold in the
# heap is measured by the runner (HeapWatch.board) and given on top of the node's budget.
with open("frozen.txt") as f:
    for name in f.read().split():
        module(name + ".py", base_path="../host_tools/virtual/board")
