{%- set cloud = cookiecutter.gpu_runner[6:] -%}
# --- single-use {{ cloud }} GPU runner for train.yml (CML drives Terraform) ---------------------
# Empty values (unset repository variables in CI) fall back to these defaults.
CLOUD := {{ cloud }}
{%- if cloud == 'aws' %}
CLOUD_REGION := $(or $(CLOUD_REGION),us-east-1)
CLOUD_TYPE := $(or $(CLOUD_TYPE),g4dn.xlarge)
{%- elif cloud == 'gcp' %}
CLOUD_REGION := $(or $(CLOUD_REGION),us-central1-a)
CLOUD_TYPE := $(or $(CLOUD_TYPE),n1-standard-4)
{%- else %}
CLOUD_REGION := $(or $(CLOUD_REGION),eastus)
CLOUD_TYPE := $(or $(CLOUD_TYPE),Standard_NC4as_T4_v3)
{%- endif %}
CLOUD_GPU := $(or $(CLOUD_GPU),nvidia-tesla-t4)
CLOUD_SPOT := $(or $(CLOUD_SPOT),true)
# Seconds a runner may wait for its job before it shuts itself down.
RUNNER_IDLE_TIMEOUT := $(or $(RUNNER_IDLE_TIMEOUT),600)
# One tag per workflow run: the runner's label, name and cloud tag, so cleanup finds it.
RUNNER_TAG := $(or $(RUNNER_TAG),manual)
RUNNER_LABELS := cml-gpu-$(RUNNER_TAG)

.PHONY: gpu-runner
gpu-runner: ## launch a single-use cloud GPU runner labelled cml-gpu-RUNNER_TAG (needs REPO_TOKEN)
	$(CML) runner launch --cloud=$(CLOUD) --cloud-region=$(CLOUD_REGION) --cloud-type=$(CLOUD_TYPE) --cloud-gpu=$(CLOUD_GPU) $(if $(filter true,$(CLOUD_SPOT)),--cloud-spot) --single --idle-timeout=$(RUNNER_IDLE_TIMEOUT) --labels=$(RUNNER_LABELS) --name=$(RUNNER_LABELS) --cloud-metadata=gh-run=$(RUNNER_TAG)

.PHONY: gpu-runner-cleanup
gpu-runner-cleanup: ## terminate every machine tagged gh-run=RUNNER_TAG that is still alive
{%- if cloud == 'aws' %}
	ids="$$(aws ec2 describe-instances --region $(CLOUD_REGION) --output text --query 'Reservations[].Instances[].InstanceId' --filters Name=tag:gh-run,Values=$(RUNNER_TAG) Name=instance-state-name,Values=pending,running,stopping,stopped)"; \
	if [ -n "$$ids" ]; then aws ec2 terminate-instances --region $(CLOUD_REGION) --instance-ids $$ids; else echo "no machine left for $(RUNNER_TAG)"; fi
{%- elif cloud == 'gcp' %}
	gcloud compute instances list --filter=labels.gh-run=$(RUNNER_TAG) --format='value(name,zone.basename())' | \
	while read -r name zone; do gcloud compute instances delete "$$name" --zone="$$zone" --quiet; done
{%- else %}
	az vm list --query "[?tags.\"gh-run\"=='$(RUNNER_TAG)'].id" --output tsv | xargs --no-run-if-empty az vm delete --yes --ids
{%- endif %}
