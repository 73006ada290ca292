.PHONY: demo test check bench
demo:  ## run the whole pipeline on embedded defaults
	scripts/demo
test:  ## every check: format, lint, types, tests
	scripts/check
check: test
bench:  ## the benchmarks (by hand; they print their figures)
	scripts/bootstrap && scripts/ensure-redis && .venv/bin/python bench/emulator_throughput.py && .venv/bin/python bench/sdk_vs_worker.py && .venv/bin/python bench/redis_footprint.py
