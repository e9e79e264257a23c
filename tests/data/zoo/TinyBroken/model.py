"""TinyBroken: loads fine, but every prediction raises a recognisable error."""
from kipoi.model import BaseModel


class MyModel(BaseModel):
    def predict_on_batch(self, x):
        raise RuntimeError("TinyBroken: deliberately broken model")
