"""Use gridlib in your own code: train a filter grid with SnAP-1, take an EP
and a GLE update, run NeuralGrid and gridnet forward. Runs from any folder;
the run's checkpoint goes to the user folder (GRIDLIB_RUNS moves it)."""

import jax
import jax.numpy as jnp

import gridlib
from gridlib import data, ep, experiment, gle, gridnet, neuralgrid
from gridlib.filtergrid.experiments import make_task

print(f"gridlib {gridlib.__version__} from {gridlib.__file__}")
mnist = data.load_mnist(n_train=256, n_test=256)  # real MNIST, a subset
x, key = mnist.x_train[:16], jax.random.PRNGKey(0)
target = ep.one_hot(mnist.y_train[:16], 10)

# An 8 x 10 filter grid reads each image row by row; SnAP-1, one epoch.
folder = experiment.run_dir_for("use_gridlib/snap1")  # resumes if run again
run = experiment.fit(make_task(rule="snap1", n_rows=8), mnist, epochs=1,
                     batch_size=32, run_dir=folder, progress=False)
print(f"SnAP-1: test accuracy {run.last['test/acc']:.2f}, run in {folder}")

# Equilibrium propagation: a free phase, then the update of a nudged one.
cfg = ep.EPConfig(sizes=(784, 64, 10), alphas=(0.1, 0.05))
params = ep.init_params(key, cfg.sizes)
free = ep.free_phase(params, x, cfg)
g, _ = ep.ep_gradient(params, x, target, free, cfg.beta, cfg)
print(f"EP update of W_1: norm {jnp.linalg.norm(g.weights[0]):.3g}")

# GLE: every step of the dynamics gives each layer its local update (the
# output error reaches the first layer after two steps).
net = (gle.le_layer(key, 784, 32, tau=1.0), gle.le_layer(key, 32, 10, tau=1.0))
cfg, state = gle.Config(("tanh", "linear"), dt=0.1), gle.init_state(net, 16)
for _ in range(5):
    state, g, _ = gle.step(net, state, x, target, cfg)
print(f"GLE update of W_1: norm {jnp.linalg.norm(g[0].W):.3g}")

# NeuralGrid and gridnet: logits of the 16 images.
p = neuralgrid.init_network(key, n_in=784, height=16, width=4, n_classes=10)
print("NeuralGrid logits:", neuralgrid.network_apply(p, x).shape)
cfg = gridnet.Config(grid=8, block=4, outer=4)
print("gridnet logits:", gridnet.forward(gridnet.init(key, cfg), x, cfg).shape)
