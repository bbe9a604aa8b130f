import { createRouter, createWebHistory } from 'vue-router'
import { useSession } from './stores/session'

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', redirect: '/trade' },
    { path: '/trade/:symbol?', name: 'trade', component: () => import('./views/TradeView.vue') },
    { path: '/wallet', name: 'wallet', component: () => import('./views/WalletView.vue'), meta: { auth: true } },
    { path: '/account', name: 'account', component: () => import('./views/AccountView.vue'), meta: { auth: true } },
    { path: '/share', name: 'share', component: () => import('./views/ShareView.vue'), meta: { auth: true } },
    { path: '/login', name: 'login', component: () => import('./views/LoginView.vue') },
    { path: '/signup', name: 'signup', component: () => import('./views/SignupView.vue') },
    { path: '/verify-email', name: 'verify', component: () => import('./views/VerifyEmailView.vue') },
    { path: '/reset-password', name: 'reset', component: () => import('./views/ResetPasswordView.vue') },
    { path: '/:rest(.*)*', redirect: '/trade' },
  ],
})

router.beforeEach(async (to) => {
  const session = useSession()
  if (!session.checked) await session.refresh().catch(() => null)
  if (to.meta.auth && !session.me) return { name: 'login', query: { next: to.fullPath } }
  return true
})
