from django.apps import AppConfig


class ReinterpretConfig(AppConfig):
    name = "reinterpret"
    verbose_name = "Reinterpretation"
