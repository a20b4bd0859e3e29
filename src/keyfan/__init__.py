"""keyfan: per-example randomness in JAX that is correct, reproducible and fast."""
from keyfan.keys import at as at
from keyfan.keys import example_keys as example_keys
from keyfan.keys import fan_out as fan_out
from keyfan.keys import key as key
from keyfan.keys import named as named
from keyfan.keys import step as step
from keyfan.keys import stream_of as stream_of
from keyfan.sample import bernoulli as bernoulli
from keyfan.sample import bits as bits
from keyfan.sample import categorical as categorical
from keyfan.sample import gumbel as gumbel
from keyfan.sample import normal as normal
from keyfan.sample import randint as randint
from keyfan.sample import truncated_normal as truncated_normal
from keyfan.sample import uniform as uniform
from keyfan.scopes import shared_randomness as shared_randomness
