# Laterne host tools: the `laterne` command and the virtual board.
