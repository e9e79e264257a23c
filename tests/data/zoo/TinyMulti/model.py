"""TinyMulti: one class for every row of models.tsv; `scale` comes from the tsv."""
import numpy as np
from kipoi.model import BaseModel


class MyModel(BaseModel):
    def __init__(self, scale=1.0, name=""):
        self.scale = np.float32(scale)
        self.name = name

    def predict_on_batch(self, x):
        return (x.astype(np.float32) * self.scale).sum(axis=1, keepdims=True)
