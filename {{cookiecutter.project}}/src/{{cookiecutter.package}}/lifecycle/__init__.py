"""The model's life after training: gate, promotion, drift, monitoring and deploys."""
