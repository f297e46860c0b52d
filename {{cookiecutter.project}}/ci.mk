# Plumbing the GitHub workflows call: secrets checks, the required check, PR comments, pushes
# of the retraining branch and the champion tag, releases, cluster credentials. Included by the
# Makefile.

##@ CI plumbing: the workflows call these (rarely needed by hand)

REPORT_TITLE ?= model-report
CML ?= npx --yes @dvcorg/cml@0.20.6

.PHONY: comment
comment: ## post report.md as the pull request's one sticky comment (CML; needs REPO_TOKEN)
	$(CML) comment update --target=pr --watermark-title=$(REPORT_TITLE) $(if $(filter cml,$(IMAGE_HOSTING)),--publish,--no-publish) report.md
{%- if cookiecutter.dvc_remote == 'azure' %}

# DVC's Azure remote in GitHub Actions: workload identity with the job's OIDC token (azure-identity
# reads AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE, which this target hands
# to the job's later steps through GITHUB_ENV), so no az CLI is needed on the machine.
AZURE_TOKEN_FILE := $(or $(RUNNER_TEMP),/tmp)/azure-federated-token
.PHONY: azure-token
azure-token: ## write this job's GitHub OIDC token for Azure (needs id-token: write, AZURE_CLIENT_ID)
	@[ -n "$${ACTIONS_ID_TOKEN_REQUEST_URL:-}" ] || { echo "ERROR: no OIDC token in this job: it needs permissions id-token: write"; exit 1; }
	@for name in AZURE_CLIENT_ID AZURE_TENANT_ID; do [ -n "$${!name:-}" ] || { echo "ERROR: $$name is empty: set it in Settings > Secrets and variables > Actions > Variables"; exit 1; }; done
	@curl -fsS -H "Authorization: Bearer $$ACTIONS_ID_TOKEN_REQUEST_TOKEN" "$$ACTIONS_ID_TOKEN_REQUEST_URL&audience=api://AzureADTokenExchange" | $(PY) -c 'import json, sys; print(json.load(sys.stdin)["value"])' > $(AZURE_TOKEN_FILE)
	@printf 'AZURE_CLIENT_ID=%s\nAZURE_TENANT_ID=%s\nAZURE_FEDERATED_TOKEN_FILE=%s\n' "$$AZURE_CLIENT_ID" "$$AZURE_TENANT_ID" $(AZURE_TOKEN_FILE) >> "$${GITHUB_ENV:-/dev/null}"
{%- endif %}

# Unset repository variables and secrets reach a step as empty strings: name the first one.
REQUIRED_VARS ?=
REQUIRED_SECRETS ?=
.PHONY: require
require: ## fail naming the first empty variable in REQUIRED_VARS or secret in REQUIRED_SECRETS
	@for name in $(REQUIRED_VARS); do [ -n "$${!name:-}" ] || { echo "ERROR: $$name is empty: set it in Settings > Secrets and variables > Actions > Variables"; exit 1; }; done
	@for name in $(REQUIRED_SECRETS); do [ -n "$${!name:-}" ] || { echo "ERROR: $$name is empty: set it in Settings > Secrets and variables > Actions > Secrets"; exit 1; }; done

# The repository's default branch (GitHub: github.event.repository.default_branch); empty where
# the event does not say (a schedule runs there anyway).
DEFAULT_BRANCH ?=

# What the model is built from: a change outside these trains nothing (README, tests/, deploy/).
MODEL_INPUTS := src dvc.yaml dvc.lock params.yaml pyproject.toml ':(glob)data/**/*.dvc' \
	.github/workflows/train.yml .github/actions/setup

# train.yml's first job, and deploy.yml's: did the model's inputs change since BASE? A run by
# hand (EVENT workflow_dispatch) or a BASE git does not have (a first push) counts as changed.
.PHONY: model-inputs-changed
model-inputs-changed: ## changed=true|false: do MODEL_INPUTS differ between BASE and HEAD (step output)
	@if [ "$${EVENT:-}" = workflow_dispatch ]; then changed=true; why="run by hand: train"; \
	elif ! git rev-parse --quiet --verify "$(BASE)^{commit}" >/dev/null; then changed=true; why="no commit $(BASE) to compare with"; \
	elif git diff --quiet "$(BASE)" HEAD -- $(MODEL_INPUTS); then changed=false; why="no model inputs changed since $(BASE)"; \
	else changed=true; why="model inputs changed since $(BASE): $$(git diff --name-only "$(BASE)" HEAD -- $(MODEL_INPUTS) | head -5 | paste -sd ' ')"; fi; \
	echo "$$why"; echo "changed=$$changed" >> "$${GITHUB_OUTPUT:-/dev/null}"

# train.yml's required status check: green when training ran and the gate passed, or when no
# model input changed. Reads the results of the run's jobs (CHANGED, TRAIN, GATE, LAUNCH) and who
# asked (EVENT, FORK, ACTOR).
.PHONY: required-check
# LAUNCH (cloud runners) mirrors TRAIN once a machine ran it: a failed train is named as such.
required-check: ## decide train.yml's required check from CHANGED, TRAIN, GATE, LAUNCH, EVENT, FORK, ACTOR
	@if [ "$${CHANGED:-}" = false ]; then echo "no model inputs changed: nothing to train"; exit 0; \
	elif [ "$${CHANGED:-}" != true ]; then \
	  reason="the changes job did not say whether model inputs changed ($${CHANGED:-no result}): see its log"; \
	elif [ "$${FORK:-}" = true ]; then \
	  reason="a pull request from a fork gets no secrets, so no training: ci.yml checked it on CPU; to train it, a maintainer pushes its commits to a branch of this repository (gh pr checkout <number> && git push origin HEAD:refs/heads/<branch>) and opens a pull request from that branch"; \
	elif [ "$${ACTOR:-}" = "dependabot[bot]" ] && [ "$${EVENT:-}" = pull_request ]; then \
	  reason="Dependabot pull requests get no secrets, so no training: ci.yml checked it on CPU; a maintainer can run train.yml on its branch (Actions > train > Run workflow)"; \
	elif [ -n "$${LAUNCH:-}" ] && [ "$$LAUNCH" != success ] && [ "$${TRAIN:-}" != failure ]; then \
	  reason="launch-runner $$LAUNCH: no GPU runner, no training (see the launch-runner job's log)"; \
	elif [ "$${TRAIN:-}" != success ]; then \
	  reason="train $${TRAIN:-skipped}: training did not finish (see the train job's log)"; \
	elif [ "$${GATE:-}" != success ]; then \
	  reason="the quality gate did not pass ($${GATE:-skipped}): see report.md in the run's artifact"; \
	fi; \
	if [ -n "$${reason:-}" ]; then echo "ERROR: $$reason"; exit 1; fi; \
	echo "trained and the quality gate passed"
{%- if cookiecutter.gpu_runner != 'none' %}

.PHONY: gpu-check
gpu-check: ## fail fast when this machine has no usable NVIDIA GPU (train.yml on GPU runners)
	nvidia-smi
{%- if cookiecutter.model == 'torch' %}
	$(PY) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'torch sees no CUDA device: leave TORCH_INDEX empty to install the CUDA build')"
{%- endif %}
{%- endif %}

.PHONY: retrain-patch
retrain-patch: ## the run's changes (data pointers, dvc.lock, metrics, new records) as a patch
	@# New files too (a first run's metrics.json): without them the merge would rerun stages.
	@# The run's own reports travel as its artifact (the pull request's body), not as a change.
	git add --all && git reset -q -- reports/retrain.md reports/promotion.json reports/drift.json reports/drift.md
	git diff --cached --binary HEAD > $(RETRAIN_PATCH)
	@echo "$$(git diff --cached --stat HEAD | tail -1) -> $(RETRAIN_PATCH)"

.PHONY: retrain-pr
retrain-pr: ## commit the patch to RETRAIN_BRANCH, open or update its pull request (gh, GH_TOKEN, DEFAULT_BRANCH)
	@test -n "$${GH_TOKEN:-}" || { echo "ERROR: no token that starts the pull request's checks (one opened with github.token starts none): set the variable RETRAIN_APP_CLIENT_ID and the secret RETRAIN_APP_PRIVATE_KEY (a GitHub App with Contents and Pull requests: write), or the secret RETRAIN_PR_TOKEN, in the retrain-pr environment"; exit 1; }
	@[ -z "$(DEFAULT_BRANCH)" ] || [ "$${GITHUB_REF:-}" = "refs/heads/$(DEFAULT_BRANCH)" ] || { echo "ERROR: retraining opens pull requests only from the default branch $(DEFAULT_BRANCH); this run is on $${GITHUB_REF:-no branch}: run retrain.yml on $(DEFAULT_BRANCH)"; exit 1; }
	git switch -C $(RETRAIN_BRANCH)
	git apply --index $(RETRAIN_PATCH)
	git -c user.name="retrain bot" -c user.email="retrain-bot@users.noreply.github.com" commit -qm "Retrain $(RETRAIN_BRANCH): challenger wins against the champion"
	gh auth setup-git
	git push --force origin HEAD:refs/heads/$(RETRAIN_BRANCH)
	if [ "$$(gh pr view $(RETRAIN_BRANCH) --json state --jq .state 2>/dev/null)" = OPEN ]; then \
		gh pr edit $(RETRAIN_BRANCH) --body-file reports/retrain.md; \
	else \
		gh pr create --head $(RETRAIN_BRANCH) $(if $(DEFAULT_BRANCH),--base $(DEFAULT_BRANCH)) --title "Retrain: the challenger beats the champion" --body-file reports/retrain.md; \
	fi


containerize-check:
	@command -v docker >/dev/null || { echo "ERROR: docker is not installed; install Docker Engine (https://docs.docker.com/engine/install/) and rerun."; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "ERROR: docker is installed but its daemon is not reachable (\`docker info\` failed); start it (e.g. \`sudo systemctl start docker\`) and rerun."; exit 1; }


# --- releases (deploy.yml): built once from what train.yml's run of the merged commit left -----

# deploy.yml's first job: the commit's own push runs of these workflows must have passed.
REQUIRED_WORKFLOWS ?= ci.yml train.yml
GH_REPO ?=
SHA ?= $(shell git rev-parse HEAD 2>/dev/null)
CI_WAIT_SECONDS ?= 14400
CI_WAIT_INTERVAL ?= 30

.PHONY: ci-wait
ci-wait: ## wait for REQUIRED_WORKFLOWS' push runs on SHA; fail naming one that did not pass (gh)
	@test -n "$${GH_TOKEN:-}" || { echo "ERROR: GH_TOKEN is empty: deploy.yml passes github.token (actions: read)"; exit 1; }
	@deadline=$$(( $$(date +%s) + $(CI_WAIT_SECONDS) )); \
	while :; do \
	  runs="$$(gh api "repos/$(GH_REPO)/actions/runs?head_sha=$(SHA)&event=push&per_page=100" --jq '.workflow_runs[] | "\(.path) \(.status) \(.conclusion)"')" \
	    || { echo "ERROR: GitHub's API did not list the runs of $(SHA) (gh api failed): re-run this deploy"; exit 1; }; \
	  pending=""; \
	  for workflow in $(REQUIRED_WORKFLOWS); do \
	    set -- $$(printf '%s\n' "$$runs" | grep "^.github/workflows/$$workflow " | head -1); \
	    if [ "$${2:-}" != completed ]; then pending="$$pending $$workflow"; \
	    elif [ "$$3" != success ]; then echo "ERROR: $$workflow ended $$3 on $(SHA): nothing is deployed; fix it and merge again (or re-run it, then this deploy)"; exit 1; fi; \
	  done; \
	  if [ -z "$$pending" ]; then echo "$(REQUIRED_WORKFLOWS) passed on $(SHA)"; exit 0; fi; \
	  if [ "$$(date +%s)" -ge "$$deadline" ]; then echo "ERROR:$$pending did not finish on $(SHA) within $(CI_WAIT_SECONDS) s: nothing is deployed"; exit 1; fi; \
	  echo "waiting for$$pending on $(SHA)"; sleep $(CI_WAIT_INTERVAL); \
	done

.PHONY: release-record
release-record: ## (train.yml, merged commits) what the pipeline made here, for the deploy -> build/release
	$(PY) -m {{ cookiecutter.package }} release-record

.PHONY: release-outputs
release-outputs: ## (deploy.yml) the release commit on HEAD, its outputs pulled and checked; never retrains
	$(PY) -m {{ cookiecutter.package }} release-apply --pull

.PHONY: release-commit
release-commit: ## (deploy.yml) the release commit on HEAD: what the champion tag points at
	$(PY) -m {{ cookiecutter.package }} release-apply

.PHONY: release-decide
release-decide: ## (deploy.yml) champion vs the release on its holdout, before traffic moves (output promote)
	$(PY) -m {{ cookiecutter.package }} promote --decide-only --approved-by canary
	$(PY) -m {{ cookiecutter.package }} release-decision

.PHONY: release-bento
release-bento: ## (deploy.yml) the release's bento from its checked outputs -> build/bento/<name>-<digest>.bento
	@$(MAKE) --no-print-directory build MODEL_DIR=models/model RELEASE=true
	$(PY) -m {{ cookiecutter.package }} export-bento --bento $(BENTO)

# The attestation deploy.yml made, checked before traffic moves: signed by deploy.yml on the
# default branch of this repository. ATTESTATION=off (repository variable) skips both.
ATTESTATION ?=
SUBJECT ?= $(if $(IMAGE),oci://$(IMAGE),$(firstword $(wildcard build/bento/*.bento)))

.PHONY: attestation-verify
attestation-verify: ## verify SUBJECT's build provenance: deploy.yml of GH_REPO, on DEFAULT_BRANCH (gh)
	@if [ "$(ATTESTATION)" = off ]; then echo "ATTESTATION is off (repository variable): $(SUBJECT) is not verified"; \
	elif [ -z "$(SUBJECT)" ]; then echo "ERROR: nothing to verify: no IMAGE and no build/bento/*.bento"; exit 1; \
	elif [ -z "$${GH_TOKEN:-}" ]; then echo "ERROR: GH_TOKEN is empty: deploy.yml passes github.token (attestations: read)"; exit 1; \
	else set -x; gh attestation verify $(SUBJECT) --repo $(GH_REPO) --signer-workflow $(GH_REPO)/.github/workflows/deploy.yml --source-ref refs/heads/$(or $(DEFAULT_BRANCH),main); fi
{%- if cookiecutter.deploy == 'local' %}

.PHONY: release-canary
release-canary: ## (serving host) roll build/bento's bento out against the stable side behind the front
	$(PY) -m {{ cookiecutter.package }} release-canary

.PHONY: release-rollback
release-rollback: ## (serving host) every request to the stable side, the canary stopped (idempotent)
	$(PY) -m {{ cookiecutter.package }} release-rollback
{%- endif %}

.PHONY: release-promote
release-promote: ## (deploy.yml) after the rollout passed: promote the release as decided before it
	$(PY) -m {{ cookiecutter.package }} release-promote --approved-by canary

.PHONY: champion-push
champion-push: ## push the champion-* tag release-promote made on HEAD to origin (needs GH_TOKEN)
	@test -n "$${GH_TOKEN:-}" || { echo "ERROR: GH_TOKEN is empty: deploy.yml passes github.token (contents: write)"; exit 1; }
	@test -n "$$(git tag --points-at HEAD --list 'champion-*')" || { echo "ERROR: no champion-* tag on HEAD: run \`make release-promote\` first"; exit 1; }
	gh auth setup-git
	git push origin $$(git tag --points-at HEAD --list 'champion-*' | sed 's|^|refs/tags/|')
{%- if cookiecutter.deploy == 'kubernetes' %}

.PHONY: argo-rollouts-plugin
argo-rollouts-plugin: ## install kubectl-argo-rollouts ARGO_ROLLOUTS_VERSION into the venv, checksum verified
	@if command -v kubectl-argo-rollouts >/dev/null; then \
		echo "kubectl-argo-rollouts is installed: $$(command -v kubectl-argo-rollouts)"; \
	else \
		mkdir -p build/argo-rollouts && cd build/argo-rollouts && \
		curl -sSfLO $(ARGO_ROLLOUTS_URL)/kubectl-argo-rollouts-linux-amd64 \
			-O $(ARGO_ROLLOUTS_URL)/argo-rollouts-checksums.txt && \
		sha256sum --check --ignore-missing argo-rollouts-checksums.txt && cd ../.. && \
		install -m 0755 build/argo-rollouts/kubectl-argo-rollouts-linux-amd64 $(BIN)/kubectl-argo-rollouts; \
	fi

# Cluster credentials after the cloud login of deploy.yml (OIDC): K8S_CLOUD is aws, gcp or azure.
K8S_CLOUD ?=
CLUSTER_NAME ?=
CLUSTER_LOCATION ?=
CLUSTER_RESOURCE_GROUP ?=

.PHONY: kube-credentials
kube-credentials: ## kubeconfig for CLUSTER_NAME on K8S_CLOUD (aws | gcp | azure), after its login
	@test -n "$(CLUSTER_NAME)" || { echo "ERROR: CLUSTER_NAME is empty: set the repository variable CLUSTER_NAME (or make kube-credentials CLUSTER_NAME=...)."; exit 1; }
	case "$(K8S_CLOUD)" in \
		aws) aws eks update-kubeconfig --name "$(CLUSTER_NAME)" --region "$(CLUSTER_LOCATION)" ;; \
		gcp) gcloud container clusters get-credentials "$(CLUSTER_NAME)" --location "$(CLUSTER_LOCATION)" ;; \
		azure) az aks get-credentials --name "$(CLUSTER_NAME)" --resource-group "$(CLUSTER_RESOURCE_GROUP)" --overwrite-existing && kubelogin convert-kubeconfig -l azurecli ;; \
		*) echo "ERROR: K8S_CLOUD is '$(K8S_CLOUD)': set the repository variable K8S_CLOUD to aws, gcp or azure."; exit 1 ;; \
	esac


.PHONY: rollout-summary
rollout-summary: kube-check ## the rollout and its analysis runs as markdown (the job summary on GitHub)
	@{ echo "## Canary of $(APP)"; echo; echo '```'; \
		$(KUBECTL) argo rollouts get rollout $(APP) --no-color; echo '```'; echo; \
		echo "| analysis run | phase | metric = last value (phase) |"; echo "|---|---|---|"; \
		$(KUBECTL) get analysisruns --sort-by=.metadata.creationTimestamp -o jsonpath='{range .items[*]}| {.metadata.name} | {.status.phase} | {range .status.metricResults[*]}{.name} = {.measurements[-1:].value} ({.phase}) {end}|{"\n"}{end}'; \
	} >> "$${GITHUB_STEP_SUMMARY:-/dev/stdout}"
{%- endif %}
