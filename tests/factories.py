import factory
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from factory.django import DjangoModelFactory

from providers.models import ArenaModel, Membership, Provider


class UserFactory(DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}@example.com")
    email = factory.SelfAttribute("username")
    password = factory.django.Password("correct horse battery staple")

    class Params:
        staff = factory.Trait(is_staff=True)

    @factory.post_generation
    def can_transition(user, create, extracted, **kwargs):
        if create and extracted:
            user.user_permissions.add(Permission.objects.get(codename="transition_arenamodel"))
        if create:
            user.save()  # Password() hashes on build; keep it
        if create and user.email:
            # A real account confirms its address before it can sign in (mandatory verification).
            EmailAddress.objects.get_or_create(
                user=user, email=user.email, defaults={"verified": True, "primary": True}
            )


class ProviderFactory(DjangoModelFactory):
    class Meta:
        model = Provider

    name = factory.Sequence(lambda n: f"Provider {n}")
    slug = factory.Sequence(lambda n: f"provider-{n}")
    website = "https://provider.example"
    contact_email = "arena@provider.example"


class MembershipFactory(DjangoModelFactory):
    class Meta:
        model = Membership

    provider = factory.SubFactory(ProviderFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.MEMBER


class ArenaModelFactory(DjangoModelFactory):
    class Meta:
        model = ArenaModel

    provider = factory.SubFactory(ProviderFactory)
    name = factory.Sequence(lambda n: f"model-{n}")
    access_kind = ArenaModel.AccessKind.OPEN_WEIGHTS
    licence = "Apache-2.0"
