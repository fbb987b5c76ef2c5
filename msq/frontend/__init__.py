"""Frontend: number systems in Brevitas quantizers, models, scheme assignment and training."""
