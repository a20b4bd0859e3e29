"""Key-misuse analysis of per-example JAX functions (``keyfan.audit``) and the runtime check
``keyfan.check_independent``."""
