"""Run under `accelerate launch --num_processes 2 --cpu`: each process holds half of a fixed
global batch, computes the contrastive loss over the gathered batch, and saves the loss and the
gradient of its own image embeddings for the test to compare with one process."""

import sys

import torch
import torch.nn.functional as F
from accelerate import Accelerator

from mvcap_build.train.distributed import gather, gather_with_grad
from mvcap_build.train.loss import ContrastiveLoss

accelerator = Accelerator(cpu=True)
torch.manual_seed(0)
image = F.normalize(torch.randn(8, 6), dim=-1)
text = F.normalize(torch.randn(8, 6), dim=-1)
ids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
rank, world = accelerator.process_index, accelerator.num_processes
half = slice(rank * 8 // world, (rank + 1) * 8 // world)
local_image = image[half].clone().requires_grad_(True)
loss = ContrastiveLoss()(
    gather_with_grad(local_image), gather_with_grad(text[half]), torch.tensor(10.0), gather(ids[half])
)["contrastive_loss"]
loss.backward()
torch.save({"loss": loss.detach(), "grad": local_image.grad, "world": world}, f"{sys.argv[1]}/rank{rank}.pt")
accelerator.wait_for_everyone()
accelerator.end_training()
