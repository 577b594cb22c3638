# Each target builds its own virtual environment, so a fresh clone with only
# Python 3.11+ needs nothing else.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
DEMO   ?= demo

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

SIYU    = $(abspath $(BIN))/siyu

# The e-commerce starter end to end: scaffold, check, 300 synthetic package-card buyers,
# the whole 60-day campaign in simulated time, then the funnel against its targets.
demo: $(STAMP)
	rm -rf $(DEMO)
	$(SIYU) init $(DEMO) --from ecommerce
	cd $(DEMO) && $(SIYU) check --strict
	cd $(DEMO) && $(SIYU) simulate playbooks/ecommerce-card.yaml --contacts 300 --seed 7
	cd $(DEMO) && $(SIYU) preview day 2 -p playbooks/ecommerce-card.yaml
	cd $(DEMO) && $(SIYU) run playbooks/ecommerce-card.yaml --clock fast
	cd $(DEMO) && $(SIYU) status
	cd $(DEMO) && $(SIYU) report funnel -p playbooks/ecommerce-card.yaml
	cd $(DEMO) && $(SIYU) report funnel -p playbooks/ecommerce-card.yaml --by hook
	cd $(DEMO) && $(SIYU) report html -p playbooks/ecommerce-card.yaml --out report.html
	@echo "demo: drafts in $(DEMO)/outbox/, ledger in $(DEMO)/siyu.db, report in $(DEMO)/report.html"

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet ruff
	$(BIN)/ruff check siyu_cli tests bench
	$(BIN)/siyu check --strict playbooks/*.yaml

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info .pytest_cache
