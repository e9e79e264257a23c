"""TinySub/one: the sum of 2 features."""
import numpy as np
from kipoi.model import BaseModel


class MyModel(BaseModel):
    def predict_on_batch(self, x):
        return x.astype(np.float32).sum(axis=1, keepdims=True)
