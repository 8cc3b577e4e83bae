"""The OpenAPI schema tells the truth: every operation documents the errors it can answer.

drf-spectacular documents the successful responses; PortalAutoSchema adds, in the one error
envelope, the statuses each operation can give from what the view declares: 404 for paths
with ids, 400 for query parameters and bodies, 413/415 for bodies, 401/403 for authenticated
views, 429 (with Retry-After) for throttled views, and the view's own `error_statuses`
(e.g. 422 for a patch that does not apply, 503 for an unreachable search cluster).
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from rest_framework import permissions, serializers

ERROR_DESCRIPTIONS = {
    400: "invalid parameters or body (each problem names its parameter or JSON pointer)",
    401: "authentication required",
    403: "not allowed",
    404: "not found",
    409: "conflict with the stored state",
    413: "request body too large",
    415: "unsupported media type of the body",
    422: "well-formed but not usable",
    429: "too many requests or too much pending work; retry after Retry-After seconds",
    503: "a service the request needs is unavailable",
}


class ProblemSerializer(serializers.Serializer):
    pointer = serializers.CharField(required=False, help_text="JSON pointer into the body")
    parameter = serializers.CharField(required=False, help_text="query parameter")
    file = serializers.CharField(required=False)
    severity = serializers.CharField()
    message = serializers.CharField()


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="machine-readable error code")
    message = serializers.CharField()
    problems = ProblemSerializer(many=True)


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


class PortalAutoSchema(AutoSchema):
    def error_statuses(self) -> set[int]:
        view = self.view
        codes = set(getattr(view, "error_statuses", ()))
        if "{" in self.path:
            codes.add(404)
        if self._get_filter_parameters():
            codes.add(400)
        if self._get_pagination_parameters():
            codes |= {400, 404}  # 404: a page beyond the last
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer():
            codes |= {400, 413, 415}
        if getattr(view, "throttle_scope", None):
            codes.add(429)
        if any(isinstance(p, permissions.IsAuthenticated) for p in view.get_permissions()):
            codes |= {401, 403}
        return codes

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in sorted(self.error_statuses()):
            if str(code) in responses:
                continue
            response = self._get_response_for_code(
                ErrorSerializer, str(code), media_types=["application/json"]
            )
            response["description"] = ERROR_DESCRIPTIONS[code]
            if code == 429:
                response["headers"] = {
                    "Retry-After": {
                        "schema": {"type": "integer", "minimum": 1},
                        "description": "seconds to wait before retrying",
                    }
                }
            responses[str(code)] = response
        return responses

    def _get_parameters(self):
        parameters = super()._get_parameters()
        bounds = self._integer_filter_bounds()
        for parameter in parameters:
            schema = parameter.setdefault("schema", {})
            if parameter["in"] == "path" and parameter["name"] in ("id", "pk"):
                # hepstore.converters: ids of 1 to 18 digits; other paths are 404.
                schema.clear()
                schema.update(type="integer", minimum=0, maximum=10**18 - 1)
            if parameter["in"] != "query":
                continue
            if parameter["name"] in bounds:
                lo, hi = bounds[parameter["name"]]
                schema.clear()
                schema.update(type="integer", minimum=lo, maximum=hi)
            elif parameter["name"] in self._filter_names() and schema.get("type") == "string":
                # Django's form fields refuse NUL characters (400).
                schema.setdefault("pattern", "^[^\\u0000]*$")
        return parameters

    def _filter_names(self) -> set[str]:
        filterset_class = getattr(self.view, "filterset_class", None)
        return set(filterset_class.base_filters) if filterset_class else set()

    def _integer_filter_bounds(self) -> dict[str, tuple[int, int]]:
        """(min, max) of the whole-number filters of the view's FilterSet."""
        from django import forms

        filterset_class = getattr(self.view, "filterset_class", None)
        if filterset_class is None or not self._is_list_view():
            return {}
        out = {}
        for name, filter_ in filterset_class.base_filters.items():
            if issubclass(filter_.field_class, forms.IntegerField):
                out[name] = (filter_.extra.get("min_value"), filter_.extra.get("max_value"))
        return out
