from __future__ import annotations

import jsonschema
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from reinterpret.fitter.combine_policy import TAG_PATTERN
from reinterpret.models import Job

# Names a scan request may list (before duplicates are dropped; the scan itself is bounded
# by the patchset).
MAX_SCAN_NAMES = 100_000


class JobSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    likelihood = serializers.IntegerField(source="likelihood_id", allow_null=True)
    combination = serializers.IntegerField(source="combination_id", allow_null=True)
    workers = serializers.SerializerMethodField(help_text="workers that ran the job's parts")

    class Meta:
        model = Job
        fields = [
            "id",
            "url",
            "kind",
            "state",
            "likelihood",
            "combination",
            "progress",
            "params",
            "result",
            "error",
            "created",
            "started",
            "finished",
            "attempts",
            "workers",
        ]

    def get_progress(self, obj) -> dict:
        return {"done": obj.progress_done, "total": obj.progress_total}

    def get_workers(self, obj) -> list[str]:
        from reinterpret.jobs import workers_of

        return workers_of(obj)

    def get_url(self, obj) -> str:
        request = self.context.get("request")
        path = f"/api/v1/jobs/{obj.pk}"
        return request.build_absolute_uri(path) if request else path


class JobCreatedSerializer(JobSerializer):
    token = serializers.CharField(
        required=False,
        help_text="only for a job made anonymously: the secret that shows and cancels it "
        "(send it as X-Job-Token or ?token=); given once",
    )

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "token"]


class CustomJobCreatedSerializer(JobCreatedSerializer):
    """The job of a custom signal, with the description of its workspace."""

    patch_sha256 = serializers.CharField(help_text="sha256 of the stored signal patch")
    page = serializers.URLField(help_text="the point page of the custom signal")
    channels = serializers.DictField(
        required=False,
        help_text="for yields per channel: the channels removed from and added to the "
        "published points' channel set, with a note saying why",
    )

    class Meta(JobCreatedSerializer.Meta):
        fields = [*JobCreatedSerializer.Meta.fields, "patch_sha256", "page", "channels"]


# JSON types as the schema states them: DRF would otherwise read "1.5" as a number and 0 as
# the string "0".
class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, not a string or float that reads as one."""

    def to_internal_value(self, data):
        if not isinstance(data, int) or isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A JSON number, not a string that reads as one."""

    def to_internal_value(self, data):
        if not isinstance(data, int | float) or isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A JSON string, not a number."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class PatchOperationSerializer(serializers.Serializer):
    """One RFC 6902 operation."""

    op = serializers.ChoiceField(choices=["add", "remove", "replace", "move", "copy", "test"])
    path = serializers.CharField(allow_blank=True, help_text="JSON pointer")
    value = serializers.JSONField(required=False)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.CharField(required=False, allow_blank=True)
        return fields


class ReinterpretRequestSerializer(serializers.Serializer):
    """Either signal (+ modifiers) or patch. The channels, their bin counts and the patch's
    targets must fit the likelihood (otherwise 400 or 422 with a problem each)."""

    signal = serializers.DictField(
        child=serializers.ListField(
            child=StrictFloatField(min_value=0, max_value=1e12), min_length=1
        ),
        required=False,
        help_text="yields per channel and bin (events, 0 to 1e12)",
    )
    modifiers = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="HistFactory modifiers added to the signal sample",
    )
    patch = PatchOperationSerializer(
        many=True, required=False, help_text="raw RFC 6902 operations (experts)"
    )


class ScanRequestSerializer(serializers.Serializer):
    points = serializers.ListField(
        child=serializers.CharField(max_length=300),
        required=False,
        max_length=MAX_SCAN_NAMES,
        help_text="names of the signal points (default: all); duplicates are dropped",
    )
    x = serializers.CharField(required=False, help_text="label on the x axis of the contour")
    y = serializers.CharField(required=False, help_text="label on the y axis of the contour")
    fixed = serializers.DictField(
        required=False,
        help_text="a slice of the grid: fixed values of labels other than x and y, e.g. "
        '{"mn1": 60}; only the points of the slice are evaluated',
    )
    upper_limit = serializers.BooleanField(
        required=False, help_text="also compute upper limits on mu (slower)"
    )


# --------------------------------------------------------------------------- combinations
# (drf-spectacular adds the empty string as a second choice: allow_blank)
@extend_schema_field({"type": "string", "pattern": TAG_PATTERN.pattern, "maxLength": 64})
class TagField(StrictCharField):
    """A member's tag: letters, digits, '_', '.', '-' (at most 64), the whole string; empty
    (as the page's form sends a cleared field) means the default."""

    def __init__(self, **kwargs):
        super().__init__(trim_whitespace=False, allow_blank=True, max_length=64, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not TAG_PATTERN.fullmatch(value):
            raise serializers.ValidationError("letters, digits, '_', '.', '-' (at most 64)")
        return value


def _names(description: str) -> dict:
    return {
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "nullable": True,
        "description": description,
    }


# The policy's shape as reinterpret.fitter.combine_policy.Policy.from_dict reads it (other
# keys of a rename or preference are ignored). The serializer checks the shape against this
# same schema (400, a problem per place); whether the policy is usable with the members is
# checked later (422 with every problem and its pointer).
POLICY_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "decorrelate": _names("parameters made one per member"),
        "correlate_only": _names("only these are shared; null: all that match"),
        "renames": {
            "type": "array",
            "nullable": True,
            "items": {
                "type": "object",
                "required": ["old", "new"],
                "properties": {
                    "old": {"type": "string", "minLength": 1},
                    "new": {"type": "string", "minLength": 1},
                    "member": {"type": "string", "nullable": True},
                },
            },
        },
        "prefer": {
            "type": "array",
            "nullable": True,
            "items": {
                "type": "object",
                "required": ["member"],
                "properties": {
                    "member": {"type": "string", "minLength": 1},
                    "parameter": {"type": "string", "nullable": True},
                },
            },
        },
        "measurement_name": {"type": "string", "minLength": 1, "nullable": True},
    },
}


def _json_schema(openapi: dict) -> dict:
    """An OpenAPI 3.0 schema as JSON Schema: `nullable: true` becomes a null type."""
    out = {}
    for key, value in openapi.items():
        if key == "nullable":
            continue
        if isinstance(value, dict):
            value = (
                _json_schema(value)
                if key != "properties"
                else {name: _json_schema(sub) for name, sub in value.items()}
            )
        out[key] = value
    if openapi.get("nullable"):
        out["type"] = [out["type"], "null"]
    return out


_POLICY_VALIDATOR = jsonschema.Draft7Validator(_json_schema(POLICY_SCHEMA))


@extend_schema_field(POLICY_SCHEMA)
class PolicyField(serializers.DictField):
    """The correlation policy, its shape checked against the documented schema."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        problems: dict[str, list[str]] = {}
        for error in _POLICY_VALIDATOR.iter_errors(value):
            path = "/".join(str(p) for p in error.absolute_path)
            if error.validator == "additionalProperties" and not path:
                for key in sorted(set(value) - set(POLICY_SCHEMA["properties"])):
                    problems.setdefault(key, []).append("not a key of the policy")
            else:
                problems.setdefault(path, []).append(error.message)
        if problems:
            raise serializers.ValidationError(problems)
        return value


class MemberSerializer(serializers.Serializer):
    likelihood = StrictIntegerField(min_value=1, max_value=10**18 - 1)
    tag = TagField(required=False, help_text="absent or empty: L<likelihood id>")
    measurement = StrictCharField(
        required=False, allow_blank=True, max_length=200, help_text="default: the first"
    )


class CombinationRequestSerializer(serializers.Serializer):
    """The definition of a combination. Its shape is checked here (400); whether the
    likelihoods exist, the policy is usable and the members combine is checked by
    reinterpret.combination_services (422 with every problem and its pointer)."""

    name = StrictCharField(max_length=200)
    description = StrictCharField(required=False, allow_blank=True, max_length=5000)
    members = serializers.ListField(child=MemberSerializer(), min_length=2)
    policy = PolicyField(required=False, help_text="correlation policy")
    label_map = serializers.DictField(
        child=serializers.DictField(child=StrictCharField(trim_whitespace=False)),
        required=False,
        help_text="{member tag: {member label: combination label}}",
    )


class CustomCombinationSerializer(serializers.Serializer):
    members = serializers.DictField(
        child=ReinterpretRequestSerializer(),
        allow_empty=False,
        help_text="per member tag, its signal as for one likelihood (members left out: "
        "background only)",
    )


class CombinationMemberSerializer(serializers.Serializer):
    tag = serializers.CharField()
    likelihood = serializers.IntegerField()
    region = serializers.CharField()
    analysis = serializers.CharField()
    version = serializers.IntegerField()
    measurement = serializers.CharField(allow_null=True)
    background_digest = serializers.CharField()


class CombinationSerializer(serializers.Serializer):
    """Documents reinterpret.api.combinations.describe()."""

    id = serializers.IntegerField()
    url = serializers.CharField()
    page = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    created = serializers.DateTimeField()
    members = CombinationMemberSerializer(many=True)
    policy = serializers.DictField()
    label_map = serializers.DictField()


class CombinationCreatedSerializer(CombinationSerializer):
    report = serializers.DictField(help_text="the validation report")


class CombinationDetailSerializer(CombinationCreatedSerializer):
    latest_scan = JobSerializer(allow_null=True)
