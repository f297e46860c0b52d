# Plumbing the GitHub workflows call: secrets checks, the required check, PR comments, pushes
# of the retraining branch and the champion tag, cluster credentials. Included by the Makefile.

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

# train.yml's required status check: green only when training ran and the gate passed. Reads
# the results of the run's jobs (TRAIN, GATE, LAUNCH) and who asked (EVENT, FORK, ACTOR).
.PHONY: required-check
# LAUNCH (cloud runners) mirrors TRAIN once a machine ran it: a failed train is named as such.
required-check: ## decide train.yml's required check from TRAIN, GATE, LAUNCH, EVENT, FORK, ACTOR
	@if [ "$${FORK:-}" = true ]; then \
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
retrain-patch: ## the run's changes to tracked files (data pointers, dvc.lock, metrics) as a patch
	git diff --binary HEAD > $(RETRAIN_PATCH)
	@echo "$$(git diff --stat HEAD | tail -1) -> $(RETRAIN_PATCH)"

.PHONY: retrain-pr
retrain-pr: ## commit the patch to RETRAIN_BRANCH and open or update its pull request (gh, GH_TOKEN)
	@test -n "$$GH_TOKEN" || { echo "ERROR: GH_TOKEN is empty: retrain.yml passes secrets.RETRAIN_PR_TOKEN (see the README), or github.token"; exit 1; }
	git switch -C $(RETRAIN_BRANCH)
	git apply --index $(RETRAIN_PATCH)
	git -c user.name="retrain bot" -c user.email="retrain-bot@users.noreply.github.com" commit -qm "Retrain $(RETRAIN_BRANCH): challenger wins against the champion"
	gh auth setup-git
	git push --force origin HEAD:refs/heads/$(RETRAIN_BRANCH)
	if [ "$$(gh pr view $(RETRAIN_BRANCH) --json state --jq .state 2>/dev/null)" = OPEN ]; then \
		gh pr edit $(RETRAIN_BRANCH) --body-file reports/retrain.md; \
	else \
		gh pr create --head $(RETRAIN_BRANCH) --base $(BASE) --title "Retrain: the challenger beats the champion" --body-file reports/retrain.md; \
	fi


containerize-check:
	@command -v docker >/dev/null || { echo "ERROR: docker is not installed; install Docker Engine (https://docs.docker.com/engine/install/) and rerun."; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "ERROR: docker is installed but its daemon is not reachable (\`docker info\` failed); start it (e.g. \`sudo systemctl start docker\`) and rerun."; exit 1; }


# promote() tags the promoted commit champion-<time>; deploy.yml carries the tag to the one job
# that may push (contents: write) as a git bundle.
CHAMPION_BUNDLE := build/champion.bundle

.PHONY: champion-bundle
champion-bundle: ## the champion-* tags on HEAD as build/champion.bundle (nothing when none)
	@mkdir -p build; rm -f $(CHAMPION_BUNDLE)
	@tags="$$(git tag --points-at HEAD --list 'champion-*')"; \
	if [ -z "$$tags" ]; then echo "no champion-* tag on HEAD: nothing was promoted"; promoted=false; \
	else git bundle create $(CHAMPION_BUNDLE) $$(printf 'refs/tags/%s ' $$tags) --not $$(git rev-parse HEAD^); \
		echo "bundled $$tags -> $(CHAMPION_BUNDLE)"; promoted=true; fi; \
	if [ -n "$${GITHUB_OUTPUT:-}" ]; then echo "promoted=$$promoted" >> "$$GITHUB_OUTPUT"; fi

.PHONY: champion-push
champion-push: ## push the champion-* tags of build/champion.bundle to origin (needs GH_TOKEN)
	@test -f $(CHAMPION_BUNDLE) || { echo "ERROR: $(CHAMPION_BUNDLE) not found: run \`make champion-bundle\` after a promotion"; exit 1; }
	@test -n "$${GH_TOKEN:-}" || { echo "ERROR: GH_TOKEN is empty: deploy.yml passes github.token (contents: write)"; exit 1; }
	git fetch $(CHAMPION_BUNDLE) 'refs/tags/champion-*:refs/tags/champion-*'
	gh auth setup-git
	git push origin 'refs/tags/champion-*:refs/tags/champion-*'
{%- if cookiecutter.deploy == 'kubernetes' %}

.PHONY: argo-rollouts-plugin
argo-rollouts-plugin: ## install kubectl-argo-rollouts ARGO_ROLLOUTS_VERSION into the venv, checksum verified
	@mkdir -p build/argo-rollouts
	cd build/argo-rollouts && curl -sSfLO $(ARGO_ROLLOUTS_URL)/kubectl-argo-rollouts-linux-amd64 \
		-O $(ARGO_ROLLOUTS_URL)/argo-rollouts-checksums.txt && \
		sha256sum --check --ignore-missing argo-rollouts-checksums.txt
	install -m 0755 build/argo-rollouts/kubectl-argo-rollouts-linux-amd64 $(BIN)/kubectl-argo-rollouts

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
