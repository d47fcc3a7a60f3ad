# `make demo` (python -m host_tools.demo): a virtual fleet feeding a broker, watched live.
