from django.apps import AppConfig


class HepstoreConfig(AppConfig):
    name = "hepstore"
    verbose_name = "Likelihood archive"
