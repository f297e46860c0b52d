{%- set cloud = cookiecutter.gpu_runner[6:] -%}
# Single-use {{ cloud }} GPU runner for train.yml: CML drives Terraform. Included by the Makefile.

##@ CI plumbing: the single-use {{ cloud }} GPU runner (train.yml)
# Empty values (unset repository variables in CI) fall back to these defaults.
CLOUD := {{ cloud }}
{%- if cloud == 'aws' %}
CLOUD_REGION := $(or $(CLOUD_REGION),us-east-1)
CLOUD_TYPE := $(or $(CLOUD_TYPE),g4dn.xlarge)
# AWS Deep Learning Base OSS Nvidia Driver GPU AMI: Ubuntu 22.04 (glibc 2.35, which the Node 24
# of the pinned actions needs) with the NVIDIA driver and CUDA, kept current by AWS. CML's AWS
# path looks images up by name only (`Name=name` filter, newest CreationDate wins: see
# iterative/aws/provider.go, ResourceMachineCreate, in iterative/terraform-provider-iterative),
# so no owner can be given: the name pattern is Amazon's, and docs say how to pin an AMI name.
DEFAULT_CLOUD_IMAGE := Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *
{%- elif cloud == 'gcp' %}
CLOUD_REGION := $(or $(CLOUD_REGION),us-central1-a)
CLOUD_TYPE := $(or $(CLOUD_TYPE),n1-standard-4)
# Canonical's Ubuntu 22.04 accelerator image with the NVIDIA driver, as `project/family` (the
# only form CML's GCP path accepts: iterative/gcp/provider.go, ResourceMachineCreate, in
# iterative/terraform-provider-iterative). The project names the owner; the family follows
# Canonical's driver updates.
DEFAULT_CLOUD_IMAGE := ubuntu-os-accelerator-images/ubuntu-accelerator-2204-amd64-with-nvidia-550
{%- else %}
CLOUD_REGION := $(or $(CLOUD_REGION),eastus)
CLOUD_TYPE := $(or $(CLOUD_TYPE),Standard_NC4as_T4_v3)
# Microsoft's Ubuntu-HPC 22.04 image (NVIDIA driver and CUDA included), as
# `publisher:offer:sku:version` (the form CML's Azure path splits: iterative/azure/provider.go,
# ResourceMachineCreate, in iterative/terraform-provider-iterative). The publisher names the owner.
DEFAULT_CLOUD_IMAGE := microsoft-dsvm:ubuntu-hpc:2204:latest
{%- endif %}
# Repository variable CLOUD_IMAGE overrides the image (same syntax as above).
CLOUD_IMAGE := $(or $(CLOUD_IMAGE),$(DEFAULT_CLOUD_IMAGE))
CLOUD_GPU := $(or $(CLOUD_GPU),nvidia-tesla-t4)
CLOUD_SPOT := $(or $(CLOUD_SPOT),true)
# Seconds a runner may wait for its job before it shuts itself down.
RUNNER_IDLE_TIMEOUT := $(or $(RUNNER_IDLE_TIMEOUT),600)
# One tag per workflow run (the run id, the same in every attempt): the machines' cloud tag, so
# cleanup finds every machine of the run. The runner's label and name add the attempt: each
# attempt's train job waits for the machine its own launch-runner started.
RUNNER_TAG := $(or $(RUNNER_TAG),manual)
RUN_ATTEMPT := $(or $(RUN_ATTEMPT),1)
RUNNER_LABELS := cml-gpu-$(RUNNER_TAG)-$(RUN_ATTEMPT)
# Seconds the machine gets to boot, register and pick up train before runner-watch cancels the
# run (a queued job would wait 24 hours), and seconds between two looks at the train job.
RUNNER_PICKUP_TIMEOUT := $(or $(RUNNER_PICKUP_TIMEOUT),1200)
WATCH_INTERVAL := $(or $(WATCH_INTERVAL),30)

.PHONY: gpu-runner
gpu-runner: ## launch a single-use cloud GPU runner labelled cml-gpu-RUNNER_TAG-RUN_ATTEMPT (needs REPO_TOKEN)
	@[ -n "$${REPO_TOKEN:-}" ] || { echo "ERROR: REPO_TOKEN is empty: set the variable RUNNER_APP_CLIENT_ID and the secret RUNNER_APP_PRIVATE_KEY (GitHub App), or the secret PERSONAL_ACCESS_TOKEN, in Settings > Secrets and variables > Actions"; exit 1; }
	$(CML) runner launch --cloud=$(CLOUD) --cloud-region=$(CLOUD_REGION) --cloud-type=$(CLOUD_TYPE) --cloud-gpu=$(CLOUD_GPU) '--cloud-image=$(CLOUD_IMAGE)' $(if $(filter true,$(CLOUD_SPOT)),--cloud-spot) --single --idle-timeout=$(RUNNER_IDLE_TIMEOUT) --labels=$(RUNNER_LABELS) --name=$(RUNNER_LABELS) --cloud-metadata=gh-run=$(RUNNER_TAG)

.PHONY: runner-token-revoke
runner-token-revoke: ## revoke the GitHub App installation token in REPO_TOKEN (the runner has registered)
	GH_TOKEN="$$REPO_TOKEN" gh api --method DELETE /installation/token

.PHONY: runner-watch
runner-watch: ## end with the result of train.yml's TRAIN_JOB in attempt RUN_ATTEMPT (gh; LAUNCHED: the launch's outcome)
	@cancel() { echo "ERROR: $$1: cancelling run $(RUNNER_TAG), or '$(TRAIN_JOB)' would wait 24 hours for a runner"; gh run cancel $(RUNNER_TAG) || true; exit 1; }; \
	[ "$(LAUNCHED)" = success ] || cancel "no runner was launched (make gpu-runner: $(or $(LAUNCHED),skipped))"; \
	give_up=$$(( $$(date +%s) + $(RUNNER_PICKUP_TIMEOUT) )); \
	while :; do \
	  state="$$(gh run view $(RUNNER_TAG) --attempt $(RUN_ATTEMPT) --json jobs --jq '.jobs[] | select(.name == "$(TRAIN_JOB)") | "\(.status) \(.conclusion)"')" || state="unknown (gh failed)"; \
	  case "$$state" in \
	    "completed success") echo "$(TRAIN_JOB): success"; exit 0 ;; \
	    completed*) echo "ERROR: $(TRAIN_JOB): $${state#completed }. This job fails with it, so 'Re-run failed jobs' repeats both, with a fresh runner"; exit 1 ;; \
	    in_progress*) ;; \
	    *) [ "$$(date +%s)" -lt "$$give_up" ] || cancel "no runner picked up '$(TRAIN_JOB)' within $(RUNNER_PICKUP_TIMEOUT) s (label $(RUNNER_LABELS); the machine's boot log is in the cloud console)" ;; \
	  esac; \
	  sleep $(WATCH_INTERVAL); \
	done

.PHONY: gpu-runner-cleanup
gpu-runner-cleanup: ## delete everything the launches of run RUNNER_TAG created (cloud tag gh-run)
{%- if cloud == 'aws' %}
	@# Instances, then (once they are gone) the key pairs and security groups tagged by the run.
	@# A security group that another run's machine still uses stays (AWS refuses: DependencyViolation).
	ids="$$(aws ec2 describe-instances --region $(CLOUD_REGION) --output text --query 'Reservations[].Instances[].InstanceId' --filters Name=tag:gh-run,Values=$(RUNNER_TAG) Name=instance-state-name,Values=pending,running,stopping,stopped)"; \
	if [ -n "$$ids" ]; then aws ec2 terminate-instances --region $(CLOUD_REGION) --instance-ids $$ids && aws ec2 wait instance-terminated --region $(CLOUD_REGION) --instance-ids $$ids; else echo "no machine left for $(RUNNER_TAG)"; fi
	for key in $$(aws ec2 describe-key-pairs --region $(CLOUD_REGION) --output text --query 'KeyPairs[].KeyName' --filters Name=tag:gh-run,Values=$(RUNNER_TAG)); do aws ec2 delete-key-pair --region $(CLOUD_REGION) --key-name "$$key"; done
	for group in $$(aws ec2 describe-security-groups --region $(CLOUD_REGION) --output text --query 'SecurityGroups[].GroupId' --filters Name=tag:gh-run,Values=$(RUNNER_TAG)); do aws ec2 delete-security-group --region $(CLOUD_REGION) --group-id "$$group" || echo "security group $$group is still in use"; done
{%- elif cloud == 'gcp' %}
	@# Firewall rules carry no labels: the provider names them after the machine, whose name is
	@# cml-<runner name>-<random> (CML passes --name to it: src/terraform.js in iterative/cml), so
	@# they are found by the runner name's prefix, also when their machine is already gone
	@# (iterative/gcp/provider.go and iterative/utils/helpers.go SetId in terraform-provider-iterative).
	gcloud compute instances list --filter=labels.gh-run=$(RUNNER_TAG) --format='value(name,zone.basename())' | \
	while read -r name zone; do gcloud compute instances delete "$$name" --zone="$$zone" --quiet </dev/null; done
	gcloud compute firewall-rules list --filter='name ~ ^cml-cml-gpu-$(RUNNER_TAG)-' --format='value(name)' | xargs --no-run-if-empty gcloud compute firewall-rules delete --quiet
{%- else %}
	@# CML's provider puts each machine, its disk, IP, network and security group in a resource
	@# group of their own, tagged like the machine: deleting the group deletes them all.
	az group list --tag gh-run=$(RUNNER_TAG) --query '[].name' --output tsv | xargs --no-run-if-empty -n 1 az group delete --yes --name
{%- endif %}
