# kdran developer entry points. `make demo` and `make test` create .venv themselves when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
RIC_LIBS := ricsdl==3.1.3 ricxappframe==3.2.2

.PHONY: demo test test-slow lint bench std-models fuzz proto clean-venv help

help:
	@echo "make demo       run the embedded closed loop (creates .venv on first use)"
	@echo "make test       run the default test suite (creates .venv on first use)"
	@echo "make test-slow  run the slow, std-size tests too"
	@echo "make lint       ruff + mypy"
	@echo "make bench      every benchmark (accuracy, robustness, latency, load, e2, flood, drift) into reports/bench/"
	@echo "                RUN=DIR adds a distillation run's models (and its teacher to the latency table),"
	@echo "                STUDENT=DIR / STUDENT_FP32=DIR real INT8 / fp32 student artifacts"
	@echo "                CPU_LATENCY_US=N runs the latency bench's gRPC rows under that PM QoS limit"
	@echo "make std-models the std models from scratch: data, teacher, validation, distillation"
	@echo "                (published student in runs/std/artifact), accuracy bench (docs/ACCURACY.md)"
	@echo "make fuzz       atheris on the E2 decoders for FUZZ_SECONDS (default 600)"
	@echo "make proto      regenerate the gRPC code in kdran/v1 from proto/"

$(STAMP): pyproject.toml
	@echo "== creating $(VENV) and installing kdran[all] (first run: a few minutes) =="
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar off -q --upgrade pip
	# torch first, pinned: it comes from the local CPU wheel, never a CUDA download.
	$(PY) -m pip install --progress-bar off -q torch==2.13.0
	$(PY) -m pip install --progress-bar off -q -e '.[all]'
	# O-RAN SC libraries pin protobuf<3.21 and redis==4.3.6, which nothing modern can live with:
	# install them without their pins (their real dependencies are in the xapp extra).
	$(PY) -m pip install --progress-bar off -q --no-deps $(RIC_LIBS)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/kdran demo $(ARGS)

test: $(STAMP)
	bash .ci/services
	$(PY) -m pytest $(ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m "slow" $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy csi distill dapp xapp sim kdran deploy

bench: $(STAMP)
	mkdir -p reports/bench
	$(VENV)/bin/kdran bench accuracy --preset std --json reports/bench/accuracy.json $(if $(RUN),--run $(RUN))
	$(VENV)/bin/kdran bench accuracy --robustness --preset std --n 300 --json reports/bench/robustness.json $(if $(RUN),--run $(RUN))
	$(VENV)/bin/kdran bench latency --preset std --json reports/bench/latency.json $(if $(STUDENT),--student $(STUDENT)) \
		$(if $(STUDENT_FP32),--student-fp32 $(STUDENT_FP32)) \
		$(if $(RUN),--teacher $(RUN)/onnx/teacher.onnx --teacher-torch $(RUN)/onnx/teacher.pt2) \
		$(if $(CPU_LATENCY_US),--cpu-wakeup-latency-us $(CPU_LATENCY_US))
	$(VENV)/bin/kdran bench load --preset std --json reports/bench/load.json
	$(VENV)/bin/kdran bench e2 --json reports/bench/e2.json
	$(VENV)/bin/kdran bench flood --json reports/bench/flood.json
	$(VENV)/bin/kdran bench drift --json reports/bench/drift.json

# Every stage prints its own progress bar and wall time; `time` adds each stage's total. A rerun
# reuses what is done: cached data, runs/std/teacher.pt (delete it to retrain), trained students
# (kdran distill resumes them).
std-models: $(STAMP)
	mkdir -p runs/std reports/bench
	time $(VENV)/bin/kdran data generate --preset std --split all
	test -f runs/std/teacher.pt || time $(VENV)/bin/kdran teacher train --preset std \
		--out runs/std/teacher.pt --threads 2
	time $(VENV)/bin/kdran teacher validate --teacher runs/std/teacher.pt --preset std --threads 2
	# exit 3 = the gates refused the student (it says which); the bench below still runs
	-time $(VENV)/bin/kdran distill --preset std --teacher runs/std/teacher.pt --out runs/std \
		--must-beat ar,ar_ad --threads 2
	time $(VENV)/bin/kdran bench accuracy --preset std --run runs/std \
		--json reports/bench/accuracy.json --markdown docs/ACCURACY.md

fuzz: $(STAMP)
	mkdir -p .fuzz/e2-corpus reports/fuzz
	KDRAN_FUZZ_SUMMARY=reports/fuzz/e2-summary.json $(PY) tests/fuzz/fuzz_e2.py \
		-max_total_time=$${FUZZ_SECONDS:-600} -print_final_stats=1 \
		-artifact_prefix=reports/fuzz/ .fuzz/e2-corpus

proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -I proto --python_out=. --pyi_out=. --grpc_python_out=. \
		$$(find proto -name '*.proto' | sort)

clean-venv:
	rm -rf $(VENV)
