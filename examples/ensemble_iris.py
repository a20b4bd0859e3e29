"""A deep ensemble on a real dataset (Fisher's Iris, examples/data/iris.csv): 8 MLPs with dropout
trained in one vmapped step, each member equal to the model initialised alone with its own key,
the ensemble better calibrated than its average member, and a plot of where it is uncertain.

Run: .venv/bin/python examples/ensemble_iris.py [OUT_DIR]   (default keyfan-out/examples)
"""

import pathlib
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax

import keyfan as kf

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the file backend

# Petal length and width (cm), standardised; species as 0, 1, 2.
table = np.genfromtxt(pathlib.Path(__file__).parent / "data" / "iris.csv", delimiter=",", names=True, dtype=None,
                      encoding="utf-8")
species = sorted(set(table["species"]))
raw = np.stack([table["petal_length"], table["petal_width"]], axis=1).astype(np.float32)
center, scale = raw.mean(0), raw.std(0)
x_all = (raw - center) / scale
y_all = np.array([species.index(s) for s in table["species"]], np.int32)

# A fixed, stratified split: every third flower of each species is held out.
test = np.arange(len(y_all)) % 3 == 0
x_train, y_train, x_test, y_test = x_all[~test], y_all[~test], x_all[test], y_all[test]
ids = np.arange(len(y_train))  # stable example ids: each example's dropout key depends on its id


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        for _ in range(2):
            x = nn.relu(nn.Dense(32)(x))
            x = nn.Dropout(0.1, deterministic=not train)(x)
        return nn.Dense(3)(x)


key = kf.key(2026)
members = 8
ens = kf.Ensemble.init(MLP(), kf.named(key, "init"), members=members, sample_input=x_train[:1])

# Member identity: member 3 is the model initialised alone with kf.at(init_key, 3).
alone = MLP().init(kf.at(kf.named(key, "init"), 3), x_train[:1])
assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), alone, ens.member(3)))

trainer = kf.ensemble.Trainer(optax.adam(1e-2), loss="cross_entropy", model_kwargs={"train": True})
state = trainer.init(ens, bootstrap=len(y_train))  # each member trains on its own bootstrap resample
order_key = kf.named(key, "order")
for epoch in range(60):
    perm = np.asarray(jax.random.permutation(kf.step(order_key, epoch), len(y_train)))
    for batch in np.array_split(perm, 4):
        state, losses = trainer.step(state, x_train[batch], y_train[batch], ids[batch])
ensemble = state.ensemble

# The ensemble against its members on the held-out flowers.
report = kf.ensemble.ensemble_report(ensemble(x_test), y_test, task="classification")
ens_metrics, mean_member = report["ensemble"], report["member_mean"]
print(f"{members} members, {len(y_train)} training / {len(y_test)} test flowers")
for name in ("accuracy", "nll", "brier", "ece"):
    print(f"  {name:8s} ensemble {ens_metrics[name]:.4f}   average member {mean_member[name]:.4f}")
assert ens_metrics["accuracy"] >= 0.9, ens_metrics
assert ens_metrics["nll"] < mean_member["nll"], report  # averaging members improves the likelihood

# Where the ensemble is unsure: predictive entropy and mutual information (member disagreement).
grid = np.stack(np.meshgrid(np.linspace(-2.2, 2.2, 120), np.linspace(-2.2, 2.2, 120)), -1).reshape(-1, 2)
pred = ensemble.predict(jnp.asarray(grid, jnp.float32), task="classification")
entropy = np.asarray(pred.entropy).reshape(120, 120)
disagreement = np.asarray(pred.mutual_information).reshape(120, 120)
on_data = ensemble.predict(jnp.asarray(x_all), task="classification")
setosa = np.asarray(on_data.entropy)[y_all == 0].mean()
boundary = np.asarray(on_data.entropy)[y_all > 0].mean()
assert setosa < boundary  # the overlapping versicolor/virginica pair is where it is unsure

out_dir = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "keyfan-out/examples")
out_dir.mkdir(parents=True, exist_ok=True)
fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
extent = [(v * scale[0] + center[0]) for v in (-2.2, 2.2)] + [(v * scale[1] + center[1]) for v in (-2.2, 2.2)]
for ax, field, title in ((axes[0], entropy, "predictive entropy (nats)"),
                         (axes[1], disagreement, "mutual information: member disagreement (nats)")):
    image = ax.imshow(field, origin="lower", extent=extent, aspect="auto", cmap="viridis")
    fig.colorbar(image, ax=ax)
    for c, marker in zip(range(3), "o^s", strict=True):
        ax.scatter(raw[y_all == c, 0], raw[y_all == c, 1], s=14, marker=marker, edgecolor="white", linewidth=0.5,
                   label=species[c], c="black")
    ax.set_title(title)
    ax.set_xlabel("petal length (cm)")
axes[0].set_ylabel("petal width (cm)")
axes[0].legend(loc="upper left")
fig.suptitle(f"{members}-member deep ensemble on Iris (keyfan, seed 2026)")
fig.tight_layout()
fig.savefig(out_dir / "ensemble_iris.png", dpi=110)
print(f"wrote {out_dir / 'ensemble_iris.png'}")
