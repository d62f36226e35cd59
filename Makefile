# The two commands of the README:
#   make demo   install into .venv and run the main job on SQLite (serves until Ctrl-C)
#   make test   install into .venv and run ruff, mypy, import-linter and the whole test suite
# `.ci/run` runs `make test`. Extra pytest arguments: make test PYTEST_ARGS="tests/unit -x".
# Extra demo arguments: make demo DEMO_ARGS="--residents 500 --port 8081".

.PHONY: test demo install lint clean

test:
	bash .ci/test.sh $(PYTEST_ARGS)

demo:
	bash .ci/demo.sh $(DEMO_ARGS)

install:
	bash .ci/install.sh

lint: install
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/lint-imports --no-cache

clean:
	rm -rf var/demo .pytest_cache .mypy_cache .ruff_cache
