"""The source of angular.functional's losses and of the margin modules, written from the C++ table
(_table.py): real signatures (every setting with its C++ default, the cross-entropy's arguments),
type hints and docstrings. functional.py and modules.py execute it at import; `python -m
angular._codegen` prints it. Type checkers read the same signatures from functional.pyi and
modules.pyi, whose lower part `python -m angular._codegen --stubs [FOLDER]` writes (a test
compares it with the table)."""

import os
import sys
from typing import List

from . import _table
from ._table import Margin, Setting

_TYPES = {"float": "float", "float?": "Optional[float]", "bool": "bool", "int": "int", "str": "str",
          "Tensor?": "Optional[Tensor]"}


def _cross_entropy(with_chunks: bool):
    return [s for s in _table.cross_entropy if with_chunks or s.name != "chunk_rows"]


def default(setting: Setting) -> str:
    value = setting.default
    if value is None:
        return "None"
    if setting.type in ("float", "float?"):
        return repr(float(value))
    if setting.type == "int":
        return repr(int(value))
    return repr(value)


def parameter(setting: Setting) -> str:
    return f"{setting.python}: {_TYPES[setting.type]} = {default(setting)}"


def parameters(settings) -> List[str]:
    return [parameter(s) for s in settings]


def arg_docs(pairs) -> str:
    return "\n".join(f"        {name}: {doc}" for name, doc in pairs)


def setting_docs(settings) -> list:
    return [(s.python, f"{s.doc} (default {default(s)})") for s in settings]


def cross_entropy_parameters(with_chunks: bool) -> List[str]:
    return parameters(_cross_entropy(with_chunks))


def cross_entropy_docs(with_chunks: bool) -> list:
    return setting_docs(_cross_entropy(with_chunks))


CROSS_ENTROPY_ARGS = "reduction, ignore_index, label_smoothing, class_weight"


def row_inputs(margin: Margin, over_cosines: bool):
    """The tensors a loss takes besides its inputs and labels: (name, doc, position) where
    position is "before" the labels or "after" them."""
    inputs = []
    if over_cosines and margin.reads_norms:
        gradient = "which get a gradient" if margin.row_input == "norms" else "read without a gradient"
        inputs.append(("norms", f"the features' norms [B], {gradient}", "before"))
    inputs += [(s.name, f"{s.doc}: one element", "after") for s in margin.statistics]
    return inputs


def signature_inputs(leading: List[str], margin: Margin, over_cosines: bool) -> List[str]:
    extra = row_inputs(margin, over_cosines)
    return (leading + [name for name, _, where in extra if where == "before"] + ["target"] +
            [name for name, _, where in extra if where == "after"])


def docstring(text: str) -> str:
    return '    """' + text.strip("\n") + '\n    """\n'


def cosine_signature(margin: Margin) -> str:
    inputs = signature_inputs(["cos"], margin, True)
    params = ", ".join(f"{name}: Tensor" for name in inputs) + ", *, " + ", ".join(
        parameters(margin.settings) + cross_entropy_parameters(False))
    return f"def {margin.function}({params}) -> Tensor:"


def cosine_function(margin: Margin) -> str:
    cos_doc = ("cosines [B, C·K] of features and class vectors, K = sub_centers per class (class j's side by side)"
               if any(s.name == "sub_centers" for s in margin.settings) else "cosines [B, C] of features and class vectors")
    docs = ([("cos", cos_doc)] + [(n, d) for n, d, _ in row_inputs(margin, True) if n == "norms"] +
            [("target", "labels [B] (int64) in [0, C), or ignore_index")] +
            [(n, d) for n, d, w in row_inputs(margin, True) if w == "after"] + setting_docs(margin.settings) +
            cross_entropy_docs(False))
    norms = "norms" if margin.reads_norms else "None"
    statistics = "".join(s.name + ", " for s in margin.statistics)
    settings = ", ".join(s.python for s in margin.settings)
    return (cosine_signature(margin) + "\n" +
            docstring(f"{margin.summary[0].upper()}{margin.summary[1:]}.\n\n"
                      f"    The cross-entropy over its logits of cosines, on the fused kernels.\n\n"
                      f"    Args:\n{arg_docs(docs)}") +
            f'    return _cosine_loss("{margin.name}", cos, {norms}, target, [{statistics}], '
            f"_setting_tensor([{settings}]), {CROSS_ENTROPY_ARGS})\n")


def feature_signature(margin: Margin) -> str:
    inputs = signature_inputs(["features", "weight"], margin, False)
    params = ", ".join(f"{name}: Tensor" for name in inputs) + ", *, " + ", ".join(
        parameters(margin.settings) + cross_entropy_parameters(True))
    return f"def {margin.linear_function}({params}) -> Tensor:"


def feature_function(margin: Margin) -> str:
    docs = ([("features", "features [B, D]"),
             ("weight", "class vectors W [C·K, D] (K sub-centers per class), of the features' dtype"),
             ("target", "labels [B] (int64) in [0, C), or ignore_index")] +
            [(n, d) for n, d, w in row_inputs(margin, False) if w == "after"] + setting_docs(margin.settings) +
            cross_entropy_docs(True))
    statistics = "".join(s.name + ", " for s in margin.statistics)
    settings = ", ".join(s.python for s in margin.settings)
    what = f"the value of {margin.function} over their cosines" if margin.normalized else "over the logits x·Wᵀ"
    return (feature_signature(margin) + "\n" +
            docstring(f"{margin.summary[0].upper()}{margin.summary[1:]}.\n\n"
                      f"    The loss of features and class vectors, {what}, in chunks of rows:\n"
                      f"    no [B, C] tensor is built.\n\n    Args:\n{arg_docs(docs)}") +
            f'    return _feature_loss("{margin.name}", features, weight, target, [{statistics}], '
            f"_setting_tensor([{settings}]), {CROSS_ENTROPY_ARGS}, chunk_rows)\n")


def module_init_signature(margin: Margin) -> str:
    params = ", ".join(["self", "num_classes: int", "embedding_dim: int"] + parameters(margin.settings) +
                       parameters(margin.module_settings)) + ", *, " + ", ".join(cross_entropy_parameters(True))
    return f"def __init__({params}) -> None:"


def module_class(margin: Margin) -> str:
    docs = ([("num_classes", "C, the classes"), ("embedding_dim", "D, the features' size")] +
            setting_docs(margin.settings) + setting_docs(margin.module_settings) + cross_entropy_docs(True))
    buffers = "".join(f"\n        {s.name}: {s.doc}, a buffer [1] from {s.start:g}, moved in training mode"
                      for s in margin.statistics)
    names = ", ".join(s.python for s in margin.settings + margin.module_settings) or "none"
    settings = ", ".join(s.python for s in margin.settings)
    module_settings = ", ".join(s.python for s in margin.module_settings)
    text = (f"{margin.summary[0].upper()}{margin.summary[1:]}.\n\n"
            f"    forward(features [B, D], target [B]) is the loss over features and the class vectors, without a\n"
            f"    [B, C] tensor; logits(features) the logits without margin, for prediction; cosines(features)\n"
            f"    the cosines [B, C·K].\n\n"
            f"    Settings are attributes of their own names ({names}): one changed between steps takes\n"
            f"    effect at the next step, also in a compiled step, without recompiling.\n\n"
            f"    Args:\n{arg_docs(docs)}\n\n"
            f"    Attributes:\n        weight: the class vectors [C·K, D], a Parameter initialised like torch.nn.Linear's"
            f"{buffers}")
    return (f"class {margin.module}(_MarginLoss):\n" + docstring(text) +
            f'    margin_name = "{margin.name}"\n\n'
            f"    {module_init_signature(margin)}\n"
            f"        super().__init__(num_classes, embedding_dim, [{settings}], [{module_settings}], "
            f"reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing, "
            f"class_weight=class_weight, chunk_rows=chunk_rows)\n")


def functional_source() -> str:
    parts = [cosine_function(m) for m in _table.margins if m.normalized]
    parts += [feature_function(m) for m in _table.margins]
    return "\n\n".join(parts)


def modules_source() -> str:
    return "\n\n".join(module_class(m) for m in _table.margins)


# ---- stubs for type checkers: the same signatures, in functional.pyi and modules.pyi --------

STUB_MARK = "# ---- written by `python -m angular._codegen --stubs`, from the C++ table: do not edit below ----\n"


def functional_stubs() -> str:
    lines = [cosine_signature(m) + " ..." for m in _table.margins if m.normalized]
    lines += [feature_signature(m) + " ..." for m in _table.margins]
    return "\n".join(lines) + "\n"


def modules_stubs() -> str:
    classes = []
    for m in _table.margins:
        body = [f"    {s.python}: {_TYPES[s.type]}" for s in m.settings + m.module_settings]
        body += [f"    {s.name}: Tensor" for s in m.statistics]
        body.append(f"    {module_init_signature(m)} ...")
        classes.append(f"class {m.module}(_MarginLoss):\n" + "\n".join(body) + "\n")
    return "\n".join(classes)


def write_stubs(folder: str) -> None:
    """Rewrites the written part of folder/functional.pyi and folder/modules.pyi."""
    for name, text in (("functional.pyi", functional_stubs()), ("modules.pyi", modules_stubs())):
        path = os.path.join(folder, name)
        with open(path) as f:
            head = f.read().split(STUB_MARK)[0]
        with open(path, "w") as f:
            f.write(head + STUB_MARK + "\n" + text)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--stubs"]:
        write_stubs(sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.abspath(__file__)))
    else:
        print(functional_source())
        print(modules_source())
