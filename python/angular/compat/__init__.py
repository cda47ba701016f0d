"""Drop-ins for the peers' APIs over angular's operators: ``angular.compat.pml``
(pytorch-metric-learning's classification losses) and ``angular.compat.insightface``
(arcface_torch's margins and PartialFC_V2)."""
