"""TinyLinear: y = x . w + b with fixed weights (numpy only)."""
import numpy as np
from kipoi.model import BaseModel


class MyModel(BaseModel):
    def __init__(self, bias=0.5):
        self.w = np.array([[0.25], [-0.5], [1.0]], dtype=np.float32)
        self.b = np.float32(bias)

    def predict_on_batch(self, x):
        return x.astype(np.float32) @ self.w + self.b
