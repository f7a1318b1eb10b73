"""vizgen: runs the real attention code in `kernels/`, records its state step by step,
and renders each trace into a self-contained interactive widget page."""
